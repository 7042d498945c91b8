//! A PostgreSQL client of raw protocol bytes, so a test can send what no well-behaved driver
//! would (a query after a refused password, reserved startup parameters, pipelined messages)
//! and see every message the server answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the server said, one backend message each.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    Error { severity: String, code: String, message: String },
    Row(Vec<Option<String>>),
    Complete(String),
    Ready,
    Auth(i32),
    /// `CopyOutResponse`: the format (0 text, 1 binary) and the column count.
    CopyOut { format: u8, columns: u16 },
    CopyData(Vec<u8>),
    CopyDone,
    NoData,
    /// `ParameterStatus`.
    Parameter(String, String),
    Other(u8),
}

pub struct Pg {
    stream: TcpStream,
}

pub fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(u32::try_from(body.len() + 4).unwrap()).to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Pg {
    pub async fn connect(addr: SocketAddr) -> Pg {
        Pg { stream: TcpStream::connect(addr).await.unwrap() }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // The server may have closed already: a failed write is what the reads then show.
        let _ = self.stream.write_all(bytes).await;
    }

    pub fn startup_bytes(params: &[(&str, &str)]) -> Vec<u8> {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for (k, v) in params {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut out = (u32::try_from(body.len() + 4).unwrap()).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    pub async fn startup(&mut self, params: &[(&str, &str)]) {
        self.send(&Self::startup_bytes(params)).await;
    }

    pub fn password_bytes(password: &str) -> Vec<u8> {
        message(b'p', &cstr(password))
    }

    pub fn query_bytes(sql: &str) -> Vec<u8> {
        message(b'Q', &cstr(sql))
    }

    /// Parse, Bind, Describe (portal), Execute and Sync of `sql` without parameters.
    pub fn extended_bytes(sql: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut parse = cstr("");
        parse.extend(cstr(sql));
        parse.extend(0u16.to_be_bytes());
        out.extend(message(b'P', &parse));
        let mut bind = cstr("");
        bind.extend(cstr(""));
        bind.extend(0u16.to_be_bytes());
        bind.extend(0u16.to_be_bytes());
        bind.extend(0u16.to_be_bytes());
        out.extend(message(b'B', &bind));
        let mut describe = vec![b'P'];
        describe.extend(cstr(""));
        out.extend(message(b'D', &describe));
        let mut execute = cstr("");
        execute.extend(0u32.to_be_bytes());
        out.extend(message(b'E', &execute));
        out.extend(message(b'S', &[]));
        out
    }

    /// Parse, Bind and Execute of `sql` for at most `max_rows` rows, then Sync: the portal
    /// stays suspended with the rest of its rows.
    pub fn partial_bytes(sql: &str, max_rows: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut parse = cstr("");
        parse.extend(cstr(sql));
        parse.extend(0u16.to_be_bytes());
        out.extend(message(b'P', &parse));
        let mut bind = cstr("");
        bind.extend(cstr(""));
        bind.extend([0u8; 6]);
        out.extend(message(b'B', &bind));
        let mut execute = cstr("");
        execute.extend(max_rows.to_be_bytes());
        out.extend(message(b'E', &execute));
        out.extend(message(b'S', &[]));
        out
    }

    /// One backend message, or `None` when the server closed the connection (or said
    /// nothing for 20 s).
    pub async fn read(&mut self) -> Option<Msg> {
        let mut head = [0u8; 5];
        match tokio::time::timeout(Duration::from_secs(20), self.stream.read_exact(&mut head)).await {
            Ok(Ok(_)) => {}
            _ => return None,
        }
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        if tokio::time::timeout(Duration::from_secs(20), self.stream.read_exact(&mut body)).await.ok()?.is_err() {
            return None;
        }
        Some(match head[0] {
            b'E' => {
                let mut fields = BTreeMap::new();
                let mut rest = &body[..];
                while let Some((&kind, tail)) = rest.split_first() {
                    if kind == 0 {
                        break;
                    }
                    let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
                    fields.insert(kind, String::from_utf8_lossy(&tail[..end]).into_owned());
                    rest = &tail[(end + 1).min(tail.len())..];
                }
                Msg::Error {
                    severity: fields.get(&b'S').cloned().unwrap_or_default(),
                    code: fields.get(&b'C').cloned().unwrap_or_default(),
                    message: fields.get(&b'M').cloned().unwrap_or_default(),
                }
            }
            b'D' => {
                let n = u16::from_be_bytes([body[0], body[1]]) as usize;
                let mut at = 2;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = i32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
                    at += 4;
                    if len < 0 {
                        values.push(None);
                    } else {
                        let len = len as usize;
                        values.push(Some(String::from_utf8_lossy(&body[at..at + len]).into_owned()));
                        at += len;
                    }
                }
                Msg::Row(values)
            }
            b'C' => Msg::Complete(String::from_utf8_lossy(&body[..body.len().saturating_sub(1)]).into_owned()),
            b'Z' => Msg::Ready,
            b'R' => Msg::Auth(i32::from_be_bytes([body[0], body[1], body[2], body[3]])),
            b'H' => Msg::CopyOut { format: body[0], columns: u16::from_be_bytes([body[1], body[2]]) },
            b'd' => Msg::CopyData(body),
            b'c' => Msg::CopyDone,
            b'n' => Msg::NoData,
            b'S' => {
                let mut parts = body.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
                Msg::Parameter(parts.next().unwrap_or_default(), parts.next().unwrap_or_default())
            }
            other => Msg::Other(other),
        })
    }

    /// Messages up to and including ReadyForQuery, or up to the connection's end.
    pub async fn until_ready(&mut self) -> (Vec<Msg>, bool) {
        let mut seen = Vec::new();
        while let Some(m) = self.read().await {
            let ready = m == Msg::Ready;
            seen.push(m);
            if ready {
                return (seen, true);
            }
        }
        (seen, false)
    }

    /// Logs in; panics if the server refuses.
    pub async fn login(addr: SocketAddr, user: &str, password: &str, database: &str) -> Pg {
        let mut pg = Pg::connect(addr).await;
        pg.startup(&[("user", user), ("database", database)]).await;
        assert_eq!(pg.read().await, Some(Msg::Auth(3)), "cleartext password asked");
        pg.send(&Self::password_bytes(password)).await;
        let (seen, ready) = pg.until_ready().await;
        assert!(ready, "login as {user} failed: {seen:?}");
        pg
    }

    pub async fn simple(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&Self::query_bytes(sql)).await;
        let (seen, ready) = self.until_ready().await;
        assert!(ready, "the connection closed on {sql:.80}: {seen:?}");
        seen
    }

    pub async fn extended(&mut self, sql: &str) -> Vec<Msg> {
        self.send(&Self::extended_bytes(sql)).await;
        let (seen, ready) = self.until_ready().await;
        assert!(ready, "the connection closed on {sql:.80}: {seen:?}");
        seen
    }
}

pub fn error_of(seen: &[Msg]) -> Option<(String, String, String)> {
    seen.iter().find_map(|m| match m {
        Msg::Error { severity, code, message } => Some((severity.clone(), code.clone(), message.clone())),
        _ => None,
    })
}

pub fn rows_of(seen: &[Msg]) -> Vec<Vec<Option<String>>> {
    seen.iter().filter_map(|m| if let Msg::Row(r) = m { Some(r.clone()) } else { None }).collect()
}

