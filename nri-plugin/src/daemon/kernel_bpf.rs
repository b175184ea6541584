//! The eBPF enforcer as the daemon's [`KernelState`].

use super::kernel::KernelState;
use crate::bpf::{BpfError, Enforcer};
use d4c_common::ContainerEntry;
use d4c_policy::compile::Tables;

impl KernelState for Enforcer {
    type Error = BpfError;

    fn write_tables(&mut self, t: &Tables) -> Result<(), BpfError> {
        // Decisions first and the trie entries that lead to them last, so a lookup never
        // finds a class whose decision is not written yet.
        self.write_proc_decisions(&t.proc_decisions)?;
        self.write_comm_rules(&t.comm_rules)?;
        self.write_exe_rules(&t.exe_rules)?;
        self.write_file_rules(&t.file_rules)
    }

    fn delete_tables(&mut self, t: &Tables) -> Result<(), BpfError> {
        self.delete_file_rules(&t.file_rules.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        self.delete_exe_rules(&t.exe_rules.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        self.delete_comm_rules(&t.comm_rules.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        self.delete_proc_decisions(&t.proc_decisions.iter().map(|(k, _)| *k).collect::<Vec<_>>())
    }

    fn register(&mut self, cgroup_id: u64, entry: ContainerEntry) -> Result<(), BpfError> {
        Enforcer::register(self, cgroup_id, entry)
    }

    fn unregister(&mut self, cgroup_id: u64) -> Result<(), BpfError> {
        Enforcer::unregister(self, cgroup_id)
    }
}
