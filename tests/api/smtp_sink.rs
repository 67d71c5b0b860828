//! A real SMTP server on a loopback port, inside the test process (mailin-embedded), that keeps
//! what it accepts and can be told to refuse: a scripted reply at the end of DATA (451, 550…),
//! 550 for some recipients, or no server at all until `serve` is called; or to be slow.
//! Shared with `benches/email.rs`.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::response::OK;
use mailin_embedded::{Handler, Response, Server};

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    received: Mutex<Vec<Received>>,
    accepted: AtomicUsize,
    /// Replies given instead of 250 at the end of the next messages' DATA.
    scripted: Mutex<VecDeque<u16>>,
    /// Recipients containing one of these get 550 at RCPT.
    refused: Mutex<Vec<String>>,
    rcpt_refusals: AtomicUsize,
    /// Keep each message (tests) or only count them (the benchmark).
    keep: bool,
    /// Milliseconds each message waits before its reply to DATA (a slow server).
    delay_ms: std::sync::atomic::AtomicU64,
}

/// The SMTP server. Clones share its state.
#[derive(Clone)]
pub struct Sink {
    inner: Arc<Inner>,
    pub port: u16,
}

#[derive(Clone)]
struct Session {
    sink: Arc<Inner>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Handler for Session {
    fn rcpt(&mut self, to: &str) -> Response {
        if lock(&self.sink.refused)
            .iter()
            .any(|r| to.contains(r.as_str()))
        {
            self.sink.rcpt_refusals.fetch_add(1, Ordering::SeqCst);
            return Response::custom(550, "5.1.1 mailbox unavailable".into());
        }
        OK
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_string();
        self.to = to.to_vec();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.sink.keep {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let delay = self.sink.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if let Some(code) = lock(&self.sink.scripted).pop_front() {
            return Response::custom(code, format!("scripted reply {code}"));
        }
        self.sink.accepted.fetch_add(1, Ordering::SeqCst);
        if self.sink.keep {
            lock(&self.sink.received).push(Received {
                from: std::mem::take(&mut self.from),
                to: std::mem::take(&mut self.to),
                raw: std::mem::take(&mut self.data),
            });
        }
        OK
    }
}

impl Sink {
    /// A port with nothing listening on it yet (connections are refused until `serve`).
    pub fn reserve(keep: bool) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Sink {
            inner: Arc::new(Inner {
                keep,
                ..Inner::default()
            }),
            port,
        }
    }

    /// A server already listening.
    pub fn start(keep: bool) -> Self {
        let sink = Self::reserve(keep);
        sink.serve();
        sink
    }

    /// Starts listening on the reserved port, in a thread of its own.
    pub fn serve(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("the reserved port");
        let mut server = Server::new(Session {
            sink: self.inner.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        });
        server
            .with_name("sink.test")
            .with_num_threads(32)
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the test SMTP server stopped: {e}");
            }
        });
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The next messages get these replies at the end of DATA instead of 250.
    pub fn script(&self, codes: &[u16]) {
        lock(&self.inner.scripted).extend(codes.iter().copied());
    }

    /// Each message from now on waits this long before its reply to DATA.
    pub fn slow_down(&self, per_message: Duration) {
        let ms = u64::try_from(per_message.as_millis()).unwrap_or(u64::MAX);
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Recipients containing `part` get 550 at RCPT.
    pub fn refuse(&self, part: &str) {
        lock(&self.inner.refused).push(part.to_string());
    }

    pub fn rcpt_refusals(&self) -> usize {
        self.inner.rcpt_refusals.load(Ordering::SeqCst)
    }

    pub fn accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// Waits until at least `n` messages were accepted (up to `limit`), then returns them all.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Received> {
        let start = std::time::Instant::now();
        while self.accepted() < n && start.elapsed() < limit {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}
