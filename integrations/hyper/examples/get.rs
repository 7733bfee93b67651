//! GETs a URL three times with leasehold-hyper; the pool's totals at the
//! end show one connection opened and reused.
//!
//! ```text
//! cargo run -p leasehold-hyper --example get [URL]
//! ```
//!
//! Without a URL it starts a small HTTP server on 127.0.0.1 and asks that,
//! so it runs without a network.

use http_body_util::BodyExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = match std::env::args().nth(1) {
        Some(url) => url,
        None => hello_server::start()?,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = leasehold_hyper::Client::new();
        for _ in 0..3 {
            let response = client.get(url.as_str()).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            println!("{url}: {status}, {} bytes", body.len());
        }
        println!("pool: {:?}", client.pool().stats().total);
        Ok(())
    })
}

/// A keep-alive HTTP/1.1 server that answers every request with a greeting.
mod hello_server {
    use std::io::{self, BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::thread;

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nhello, world\n";

    /// Starts the server on a free port of 127.0.0.1; returns its URL.
    pub(crate) fn start() -> io::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/", listener.local_addr()?);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || serve(stream));
            }
        });
        Ok(url)
    }

    /// Answers requests (heads only: bodies are not expected) until the
    /// client closes the connection.
    fn serve(stream: TcpStream) -> io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                writer.write_all(RESPONSE)?;
            }
        }
    }
}
