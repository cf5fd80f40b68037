//! A minimal HTTP/1.1 server on loopback, started by a test: each path gets
//! the reply the test chose (good files, error statuses, bodies cut short or
//! with a wrong Content-Length, or no answer at all).
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers for one path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with a correct Content-Length.
    Ok(Vec<u8>),
    /// 200 with a `Content-Encoding: gzip` header (the client decompresses).
    OkGzipEncoded(Vec<u8>),
    /// An error status with a small HTML body.
    Status(u16, &'static str),
    /// 200, Content-Length of the whole body, but only the first `n` bytes
    /// are sent before the connection is closed.
    CutShort(Vec<u8>, usize),
    /// 200 without Content-Length; the body is whatever is given.
    NoLength(Vec<u8>),
    /// 200 with the whole body but a Content-Length of `n`: fewer bytes than
    /// it sends, or more.
    Length(Vec<u8>, usize),
    /// Accept the connection and never answer.
    Hang,
}

/// A running server; it logs the path of every request.
pub struct Server {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on 127.0.0.1 (an ephemeral port) serving `routes`
    /// (path → reply); any other path gets a 404.
    pub fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let routes = Arc::clone(&routes);
                let log = Arc::clone(&log2);
                std::thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Server { base, log }
    }

    /// The base URL of the mirror `mirror` (`http://127.0.0.1:PORT/mirror/`).
    pub fn url(&self, mirror: &str) -> String {
        format!("{}/{mirror}/", self.base)
    }

    /// The paths requested so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(mut stream: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    log.lock().unwrap().push(path.clone());
    let reply = routes
        .get(&path)
        .cloned()
        .unwrap_or(Reply::Status(404, "Not Found"));
    let head = |status: &str, extra: &str| {
        format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n{extra}\r\n")
    };
    let _ = match reply {
        Reply::Ok(body) => stream
            .write_all(head("200 OK", &format!("Content-Length: {}\r\n", body.len())).as_bytes())
            .and_then(|_| stream.write_all(&body)),
        Reply::OkGzipEncoded(body) => stream
            .write_all(
                head(
                    "200 OK",
                    &format!(
                        "Content-Length: {}\r\nContent-Encoding: gzip\r\n",
                        body.len()
                    ),
                )
                .as_bytes(),
            )
            .and_then(|_| stream.write_all(&body)),
        Reply::Status(code, text) => {
            let body = format!("<html><body>{code} {text}</body></html>");
            stream
                .write_all(
                    head(
                        &format!("{code} {text}"),
                        &format!("Content-Length: {}\r\n", body.len()),
                    )
                    .as_bytes(),
                )
                .and_then(|_| stream.write_all(body.as_bytes()))
        }
        Reply::CutShort(body, n) => stream
            .write_all(head("200 OK", &format!("Content-Length: {}\r\n", body.len())).as_bytes())
            .and_then(|_| stream.write_all(&body[..n])),
        Reply::NoLength(body) => stream
            .write_all(head("200 OK", "").as_bytes())
            .and_then(|_| stream.write_all(&body)),
        Reply::Length(body, n) => stream
            .write_all(head("200 OK", &format!("Content-Length: {n}\r\n")).as_bytes())
            .and_then(|_| stream.write_all(&body)),
        Reply::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        }
    };
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}
