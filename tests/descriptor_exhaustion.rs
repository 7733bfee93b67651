//! Running out of file descriptors is this process's fault, not the
//! route's: connects that fail with `EMFILE` fail their requests with that
//! cause, but never make the route down, so the route works again the
//! moment a descriptor is free.
//!
//! Its own test binary: it lowers the process's descriptor limit, which no
//! other test may run beside. Linux only: it relies on `RLIMIT_NOFILE`
//! turning the next `socket()` into `EMFILE`.

#![cfg(target_os = "linux")]

use leasehold_testkit::for_each_policy;

use leasehold::{Error, Policy, Pool, TcpConnector};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, PoisonError};
use std::thread;

/// The descriptor limit is the process's: one test at a time.
static LIMIT: Mutex<()> = Mutex::new(());

/// Serves one echo per connection, forever (the thread ends with the
/// process).
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The lowest descriptor number not in use.
fn lowest_free_descriptor() -> libc::c_int {
    (0..)
        // SAFETY: F_GETFD only reads the flags of descriptor `fd`, if open.
        .find(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1)
        .unwrap()
}

/// Runs `body` with no descriptor to spare, then restores the limit.
fn without_descriptors<R>(body: impl FnOnce() -> R) -> R {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the current limits into `old`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let tight = libc::rlimit {
        rlim_cur: lowest_free_descriptor() as libc::rlim_t,
        rlim_max: old.rlim_max,
    };
    // SAFETY: setrlimit reads the limits from `tight`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &tight) }, 0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body));
    // SAFETY: as above, restoring the limits read before.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn emfile_never_makes_the_route_down<P: Policy>() {
    let _alone = LIMIT.lock().unwrap_or_else(PoisonError::into_inner);
    let addr = echo_server();
    let pool: Pool<TcpConnector, P> = Pool::builder(TcpConnector::new())
        .policy::<P>()
        .build()
        .unwrap();
    let errors = without_descriptors(|| {
        (0..5)
            .map(|_| pool.lease(&addr).map(drop).unwrap_err())
            .collect::<Vec<_>>()
    });
    for err in &errors {
        match err {
            Error::Connect { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::EMFILE), "{err}")
            }
            other => panic!("expected EMFILE, got {other:?}"),
        }
    }
    assert_eq!(pool.health().connect_failures, 5, "a real connect each");
    // A descriptor is free again: the route works at once.
    let mut lease = pool.lease(&addr).expect("the route was never down");
    lease.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    lease.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
}

for_each_policy!(emfile_never_makes_the_route_down);
