//! The plugin runtime against an in-process fake runtime that speaks the real wire format:
//! handshake, events both ways of delivery, refusing a start, reconnecting, bad frames.

mod fake_runtime;

use std::{sync::Arc, time::Duration};

use d4c_nri::{api::Event, run, run_with_reconnect, Backoff, Error, EventSet, PluginConfig};
use fake_runtime::{container, pod, within, FakeRuntime, Recorder};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    task::JoinHandle,
};

/// Starts one plugin session against `rt`; the oneshot stops it.
fn start(
    rt: &FakeRuntime,
    handler: Arc<Recorder>,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), Error>>) {
    let mut config = PluginConfig::external("d4c", "10", &rt.path).unwrap();
    config.registration_timeout = Duration::from_secs(3);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run(&mut config, handler, async {
            let _ = stopped.await;
        })
        .await
    });
    (stop, task)
}

#[tokio::test]
async fn handshake_registers_subscribes_and_synchronizes_in_chunks() {
    let rt = FakeRuntime::new();
    let only = EventSet::of(&[Event::START_CONTAINER, Event::REMOVE_CONTAINER]);
    let h = Arc::new(Recorder::with_events(only));
    let (stop, task) = start(&rt, Arc::clone(&h));
    let conn = rt.accept().await;
    assert_eq!((conn.name.as_str(), conn.idx.as_str()), ("d4c", "10"));

    let (p1, p2) = (pod("prod", "web"), pod("dev", "db"));
    let ctrs = [
        container(&p1, "nginx", "nginx:1.25"),
        container(&p2, "pg", "postgres:16"),
    ];
    let mask = conn.handshake(&[p1, p2], &ctrs, 2).await;
    assert_eq!(
        mask,
        (1 << 5) | (1 << 10),
        "START_CONTAINER and REMOVE_CONTAINER only"
    );
    // One call with everything, after the last chunk.
    assert_eq!(h.wait_for(1).await, ["sync web,db,nginx,pg"]);

    stop.send(()).unwrap();
    within("plugin stop", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn events_arrive_through_state_change_and_dedicated_calls() {
    let rt = FakeRuntime::new();
    let h = Arc::new(Recorder::default());
    let (stop, task) = start(&rt, Arc::clone(&h));
    let conn = rt.accept().await;
    conn.handshake(&[], &[], 1).await;
    h.wait_for(1).await;

    let p = pod("prod", "web");
    let c = container(&p, "nginx", "nginx:1.25");
    // containerd 1.7: StateChange for pod and start/remove events.
    conn.state_change(Event::RUN_POD_SANDBOX, &p, None)
        .await
        .unwrap();
    conn.state_change(Event::START_CONTAINER, &p, Some(&c))
        .await
        .unwrap();
    // Not subscribed: acknowledged, not delivered.
    conn.state_change(Event::POST_START_CONTAINER, &p, Some(&c))
        .await
        .unwrap();
    conn.state_change(Event::REMOVE_CONTAINER, &p, Some(&c))
        .await
        .unwrap();
    conn.state_change(Event::REMOVE_POD_SANDBOX, &p, None)
        .await
        .unwrap();
    // Newer runtimes: dedicated calls.
    conn.start_container(&p, &c).await.unwrap();
    let stop_req = d4c_nri::api::StopContainerRequest {
        pod: Some(p.clone()).into(),
        container: Some(c.clone()).into(),
        ..Default::default()
    };
    within(
        "StopContainer",
        conn.plugin
            .stop_container(ttrpc::context::with_timeout(0), &stop_req),
    )
    .await
    .unwrap();
    let run_req = d4c_nri::api::RunPodSandboxRequest {
        pod: Some(p.clone()).into(),
        ..Default::default()
    };
    within(
        "RunPodSandbox",
        conn.plugin
            .run_pod_sandbox(ttrpc::context::with_timeout(0), &run_req),
    )
    .await
    .unwrap();

    assert_eq!(
        h.take(),
        [
            "run-pod web",
            "start prod/web/nginx",
            "remove web/nginx",
            "remove-pod web",
            "start prod/web/nginx",
            "stop web/nginx",
            "run-pod web",
        ]
    );
    stop.send(()).unwrap();
    within("plugin stop", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_refused_start_is_an_error_response_with_the_reason() {
    let rt = FakeRuntime::new();
    let h = Arc::new(Recorder::default());
    let (stop, task) = start(&rt, Arc::clone(&h));
    let conn = rt.accept().await;
    conn.handshake(&[], &[], 1).await;

    let p = pod("prod", "web");
    let c = container(&p, "refuse-me", "nginx");
    let err = conn
        .state_change(Event::START_CONTAINER, &p, Some(&c))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("d4c cannot protect refuse-me"),
        "{err}"
    );
    let err = conn.start_container(&p, &c).await.unwrap_err();
    assert!(
        err.to_string().contains("d4c cannot protect refuse-me"),
        "{err}"
    );
    // The connection stays usable.
    conn.start_container(&p, &container(&p, "ok", "nginx"))
        .await
        .unwrap();
    stop.send(()).unwrap();
    within("plugin stop", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn the_session_ends_with_an_error_when_the_runtime_goes_away() {
    let rt = FakeRuntime::new();
    let (_stop, task) = start(&rt, Arc::new(Recorder::default()));
    let conn = rt.accept().await;
    conn.handshake(&[], &[], 1).await;
    conn.close().await;
    let err = within("plugin end", task).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ConnectionLost(_)), "{err:?}");
    assert!(err.is_retryable());

    // Shutdown from the runtime ends the session too.
    let (_stop, task) = start(&rt, Arc::new(Recorder::default()));
    let conn = rt.accept().await;
    conn.handshake(&[], &[], 1).await;
    within(
        "Shutdown",
        conn.plugin.shutdown(
            ttrpc::context::with_timeout(0),
            &d4c_nri::api::Empty::default(),
        ),
    )
    .await
    .unwrap();
    conn.close().await;
    let err = within("plugin end", task).await.unwrap().unwrap_err();
    assert!(matches!(err, Error::RuntimeShutdown), "{err:?}");
}

#[tokio::test]
async fn reconnects_after_the_runtime_drops_the_connection() {
    let rt = FakeRuntime::new();
    let h = Arc::new(Recorder::default());
    let config = PluginConfig::external("d4c", "10", &rt.path).unwrap();
    let backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(40),
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_with_reconnect(config, Arc::clone(&h), backoff, async {
        let _ = stopped.await;
    }));

    let p = pod("prod", "web");
    let c = container(&p, "nginx", "nginx");
    for round in 0..3 {
        let conn = rt.accept().await;
        conn.handshake(std::slice::from_ref(&p), std::slice::from_ref(&c), 1)
            .await;
        assert_eq!(h.wait_for(1).await, ["sync web,nginx"], "round {round}");
        conn.start_container(&p, &c).await.unwrap();
        assert_eq!(h.take(), ["start prod/web/nginx"]);
        conn.close().await;
    }
    // A runtime that accepts and hangs up at once: the plugin tries again.
    let silent = rt.accept_raw().await;
    drop(silent);
    let conn = rt.accept().await;
    conn.handshake(&[], &[], 1).await;
    stop.send(()).unwrap();
    within("plugin stop", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_runtime_that_never_answers_times_the_registration_out() {
    let rt = FakeRuntime::new();
    let mut config = PluginConfig::external("d4c", "10", &rt.path).unwrap();
    config.registration_timeout = Duration::from_millis(200);
    let task = tokio::spawn(async move {
        run(
            &mut config,
            Arc::new(Recorder::default()),
            std::future::pending(),
        )
        .await
    });
    let _silent = rt.accept_raw().await;
    let err = within("plugin end", task).await.unwrap().unwrap_err();
    assert!(
        matches!(err, Error::RegistrationTimeout(_) | Error::Register(_)),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn shutdown_while_waiting_to_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let config = PluginConfig::external("d4c", "10", dir.path().join("missing.sock")).unwrap();
    let backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(20),
    };
    let r = within(
        "reconnect loop",
        run_with_reconnect(
            config,
            Arc::new(Recorder::default()),
            backoff,
            tokio::time::sleep(Duration::from_millis(100)),
        ),
    )
    .await;
    assert!(r.is_ok());
}

/// A frame header.
fn header(conn: u32, len: u32) -> Vec<u8> {
    let mut h = conn.to_be_bytes().to_vec();
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// Accepts a plugin on a raw socket, reads its `RegisterPlugin` request, then sends `bytes`
/// (and hangs up if `hang_up`); returns how the plugin's session ended.
async fn plugin_end_after(bytes: &[u8], hang_up: bool) -> Error {
    let rt = FakeRuntime::new();
    let (_stop, task) = start(&rt, Arc::new(Recorder::default()));
    let mut raw = rt.accept_raw().await;
    let mut h = [0u8; 8];
    within("first frame", raw.read_exact(&mut h)).await.unwrap();
    assert_eq!(
        h[..4],
        2u32.to_be_bytes(),
        "RegisterPlugin goes to the Runtime connection"
    );
    // Read all of it: unread data would turn the hang-up into a reset.
    let mut payload = vec![0u8; u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize];
    within("first payload", raw.read_exact(&mut payload))
        .await
        .unwrap();
    raw.write_all(bytes).await.unwrap();
    let raw = (!hang_up).then_some(raw);
    let err = within("plugin end", task).await.unwrap().unwrap_err();
    drop(raw);
    err
}

#[tokio::test]
async fn malformed_frames_end_the_session_cleanly() {
    let err = plugin_end_after(&header(1, u32::MAX), false).await;
    assert!(err.to_string().contains("connection lost"), "{err}");
    let msg = d4c_nri::chain(&err);
    assert!(msg.contains("over the"), "{msg}");

    let mut unknown = header(9, 3);
    unknown.extend_from_slice(b"abc");
    let msg = d4c_nri::chain(&plugin_end_after(&unknown, false).await);
    assert!(msg.contains("unknown connection id 9"), "{msg}");

    // Ends inside a header, inside a payload.
    let msg = d4c_nri::chain(&plugin_end_after(&header(1, 100)[..6], true).await);
    assert!(msg.contains("inside a frame"), "{msg}");
    let mut short = header(1, 100);
    short.extend_from_slice(&[0; 40]);
    let msg = d4c_nri::chain(&plugin_end_after(&short, true).await);
    assert!(msg.contains("inside a frame"), "{msg}");
}

/// A ttrpc request frame for the Plugin service with an arbitrary payload.
fn ttrpc_request(stream: u32, method: &str, payload: Vec<u8>) -> Vec<u8> {
    use protobuf::Message;
    let req = ttrpc::Request {
        service: "nri.pkg.api.v1alpha1.Plugin".into(),
        method: method.into(),
        payload,
        ..Default::default()
    };
    let body = req.write_to_bytes().unwrap();
    let mut msg = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
    msg.extend_from_slice(&stream.to_be_bytes());
    msg.extend_from_slice(&[1, 0]); // request, no flags
    msg.extend_from_slice(&body);
    let mut frame = header(1, u32::try_from(msg.len()).unwrap());
    frame.extend_from_slice(&msg);
    frame
}

/// Reads frames from `raw` until one for connection 1 arrives; returns its ttrpc response.
async fn read_response(raw: &mut tokio::net::UnixStream) -> ttrpc::Response {
    use protobuf::Message;
    let mut buf = Vec::new();
    loop {
        let mut h = [0u8; 8];
        within("response frame", raw.read_exact(&mut h))
            .await
            .unwrap();
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let mut payload = vec![0u8; len];
        raw.read_exact(&mut payload).await.unwrap();
        if h[..4] == 1u32.to_be_bytes() {
            buf.extend_from_slice(&payload);
        }
        if buf.len() >= 10 {
            let body_len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() >= 10 + body_len {
                assert_eq!(buf[8], 2, "a response");
                return ttrpc::Response::parse_from_bytes(&buf[10..10 + body_len]).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn garbage_payload_gets_an_error_response_and_no_panic() {
    let rt = FakeRuntime::new();
    let (stop, task) = start(&rt, Arc::new(Recorder::default()));
    let mut raw = rt.accept_raw().await;
    // Garbage where a ConfigureRequest should be: an error status comes back.
    raw.write_all(&ttrpc_request(
        1,
        "Configure",
        vec![0xff, 0xff, 0xff, 0x0f, 0x08],
    ))
    .await
    .unwrap();
    let resp = read_response(&mut raw).await;
    assert_ne!(resp.status.code.value(), 0, "{resp:?}");
    // An unknown method too.
    raw.write_all(&ttrpc_request(3, "NoSuchMethod", vec![]))
        .await
        .unwrap();
    let resp = read_response(&mut raw).await;
    assert_eq!(
        resp.status.code.enum_value(),
        Ok(ttrpc::Code::UNIMPLEMENTED),
        "{resp:?}"
    );
    // A valid request on the same connection still works.
    let ok = d4c_nri::api::ConfigureRequest::default();
    raw.write_all(&ttrpc_request(
        5,
        "Configure",
        protobuf::Message::write_to_bytes(&ok).unwrap(),
    ))
    .await
    .unwrap();
    let resp = read_response(&mut raw).await;
    assert_eq!(resp.status.code.value(), 0, "{resp:?}");
    let cfg: d4c_nri::api::ConfigureResponse =
        protobuf::Message::parse_from_bytes(&resp.payload).unwrap();
    assert_ne!(cfg.events, 0);
    stop.send(()).unwrap();
    within("plugin stop", task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_runtime_launched_plugin_uses_the_socket_it_inherits() {
    use std::os::fd::IntoRawFd;
    let rt = FakeRuntime::new();
    // What a runtime that launches the plugin does: connect, pass the descriptor number
    // and the plugin's name and index in the environment.
    let fd = std::os::unix::net::UnixStream::connect(&rt.path)
        .unwrap()
        .into_raw_fd();
    std::env::set_var(d4c_nri::ENV_SOCKET, fd.to_string());
    std::env::set_var(d4c_nri::ENV_NAME, "launched");
    std::env::set_var(d4c_nri::ENV_IDX, "05");
    let config = PluginConfig::from_env("d4c", "10", "/nonexistent/nri.sock");
    for v in [d4c_nri::ENV_SOCKET, d4c_nri::ENV_NAME, d4c_nri::ENV_IDX] {
        std::env::remove_var(v);
    }
    let mut config = config.unwrap();
    assert!(
        !config.can_reconnect(),
        "an inherited descriptor is used once"
    );
    let h = Arc::new(Recorder::with_events(EventSet::of(&[
        Event::START_CONTAINER,
    ])));
    let (stop, stopped) = oneshot::channel::<()>();
    let handler = Arc::clone(&h);
    let task = tokio::spawn(async move {
        run(&mut config, handler, async {
            let _ = stopped.await;
        })
        .await
    });
    let conn = rt.accept().await;
    assert_eq!((conn.name.as_str(), conn.idx.as_str()), ("launched", "05"));
    let p = pod("prod", "web");
    let mask = conn.handshake(std::slice::from_ref(&p), &[], 1).await;
    assert_eq!(mask, 1 << 5);
    conn.start_container(&p, &container(&p, "app", "nginx:1.25"))
        .await
        .unwrap();
    assert!(h.wait_for(2).await.iter().any(|e| e.contains("app")));
    stop.send(()).unwrap();
    within("plugin stop", task).await.unwrap().unwrap();

    // A descriptor that is not a socket (a pipe here) is refused with a clear error.
    let (pipe, _writer) = std::io::pipe().unwrap();
    std::env::set_var(
        d4c_nri::ENV_SOCKET,
        std::os::fd::AsRawFd::as_raw_fd(&pipe).to_string(),
    );
    let e = PluginConfig::from_env("d4c", "10", "/x").err();
    std::env::remove_var(d4c_nri::ENV_SOCKET);
    assert!(e.is_some());
}
