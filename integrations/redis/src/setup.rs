//! The opening exchange of a Redis connection, run by the pool's event loop
//! under its connect timeout before the connection is first lent out:
//! `AUTH` (with the route's user and password), `HELLO 3` (for RESP3),
//! `SELECT` (for a database other than 0), pipelined in one write. A route
//! that needs none of them sends nothing.
//!
//! A refusal fails the connect with an `io::Error` that says which command
//! the server refused and why, of a kind a caller can act on:
//! `PermissionDenied` for a wrong or missing password (`WRONGPASS`,
//! `NOAUTH`, a user without the right), `InvalidInput` for a database the
//! server does not have, `Unsupported` for `HELLO 3` on a server older than
//! Redis 6.

use crate::resp::ReplyScan;
use crate::route::RedisRoute;
use leasehold::Setup;
use redis::ProtocolVersion;
use std::io;

/// The step [`RedisConnector`](crate::RedisConnector) runs on each new
/// connection.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RedisSetup;

/// A command of the exchange, for reading its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SetupStep {
    Auth,
    Hello,
    Select,
}

fn steps(route: &RedisRoute) -> impl Iterator<Item = SetupStep> {
    let auth = route.password().is_some().then_some(SetupStep::Auth);
    let hello = (route.protocol() == ProtocolVersion::RESP3).then_some(SetupStep::Hello);
    let select = (route.db() != 0).then_some(SetupStep::Select);
    auth.into_iter().chain(hello).chain(select)
}

impl Setup<RedisRoute> for RedisSetup {
    fn request(&self, route: &RedisRoute) -> Vec<u8> {
        let mut request = Vec::new();
        for step in steps(route) {
            let command = match step {
                SetupStep::Auth => {
                    let mut auth = redis::cmd("AUTH");
                    if let Some(user) = route.username() {
                        auth.arg(user);
                    }
                    auth.arg(route.password().unwrap_or_default());
                    auth
                }
                SetupStep::Hello => {
                    let mut hello = redis::cmd("HELLO");
                    hello.arg(3);
                    hello
                }
                SetupStep::Select => {
                    let mut select = redis::cmd("SELECT");
                    select.arg(route.db());
                    select
                }
            };
            command.write_packed_command(&mut request);
        }
        request
    }

    fn response(&self, route: &RedisRoute, received: &[u8]) -> io::Result<Option<usize>> {
        let mut at = 0;
        for step in steps(route) {
            let mut scan = ReplyScan::default();
            let len = match scan.complete(&received[at..]) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the answer to {step:?} is not RESP: {e}"),
                    ))
                }
            };
            check(step, route, &received[at..at + len])?;
            at += len;
        }
        Ok(Some(at))
    }

    fn stage(&self) -> &'static str {
        "Redis connection set-up (AUTH/HELLO/SELECT)"
    }
}

/// Whether `reply` accepts `step`.
fn check(step: SetupStep, route: &RedisRoute, reply: &[u8]) -> io::Result<()> {
    let text = || String::from_utf8_lossy(&reply[1..reply.len() - 2]).into_owned();
    let accepted = match step {
        SetupStep::Auth | SetupStep::Select => reply == b"+OK\r\n",
        // A map in RESP3, or an array if the server answers in RESP2.
        SetupStep::Hello => matches!(reply[0], b'%' | b'*'),
    };
    if accepted {
        return Ok(());
    }
    if !matches!(reply[0], b'-' | b'!') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "unexpected answer to {}: {:?}",
                describe(step, route),
                String::from_utf8_lossy(reply)
            ),
        ));
    }
    let message = if reply[0] == b'!' {
        // A blob error: `!<len>\r\n<text>\r\n`.
        let body = reply.iter().position(|&b| b == b'\n').map_or(0, |n| n + 1);
        String::from_utf8_lossy(&reply[body..reply.len() - 2]).into_owned()
    } else {
        text()
    };
    let code = message.split(' ').next().unwrap_or_default();
    let kind = match (step, code) {
        (_, "NOAUTH" | "WRONGPASS" | "NOPERM") | (SetupStep::Auth, _) => {
            io::ErrorKind::PermissionDenied
        }
        (SetupStep::Hello, _) => io::ErrorKind::Unsupported,
        (SetupStep::Select, _) => io::ErrorKind::InvalidInput,
    };
    let hint = match (kind, route.has_password()) {
        (io::ErrorKind::PermissionDenied, false) => {
            " (the server wants a password: give it in the URL, redis://[user]:password@host)"
        }
        _ => "",
    };
    Err(io::Error::new(
        kind,
        format!(
            "{} refused by {}: {message}{hint}",
            describe(step, route),
            route.addr()
        ),
    ))
}

fn describe(step: SetupStep, route: &RedisRoute) -> String {
    match step {
        SetupStep::Auth => match route.username() {
            Some(user) => format!("AUTH as {user:?}"),
            None => "AUTH".to_owned(),
        },
        SetupStep::Hello => "HELLO 3 (RESP3 needs Redis 6 or later)".to_owned(),
        SetupStep::Select => format!("SELECT {}", route.db()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(url: &str) -> RedisRoute {
        RedisRoute::parse(url).unwrap()
    }

    #[test]
    fn a_plain_route_sends_nothing_and_is_done_at_once() {
        let route = route("redis://127.0.0.1");
        assert!(RedisSetup.request(&route).is_empty());
        assert_eq!(RedisSetup.response(&route, b"").unwrap(), Some(0));
    }

    #[test]
    fn auth_hello_and_select_go_out_together_and_are_read_together() {
        let route = route("redis://app:pw@127.0.0.1/4?protocol=resp3");
        let request = RedisSetup.request(&route);
        assert_eq!(
            request,
            b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n\
              *2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n\
              *2\r\n$6\r\nSELECT\r\n$1\r\n4\r\n"
        );
        let answer = b"+OK\r\n%1\r\n+server\r\n+redis\r\n+OK\r\n";
        for cut in 0..answer.len() {
            assert_eq!(RedisSetup.response(&route, &answer[..cut]).unwrap(), None);
        }
        assert_eq!(
            RedisSetup.response(&route, answer).unwrap(),
            Some(answer.len())
        );
    }

    #[test]
    fn refusals_say_which_command_and_why_with_a_kind_to_act_on() {
        let cases: [(&str, &[u8], io::ErrorKind, &str); 4] = [
            (
                "redis://:wrong@127.0.0.1",
                b"-WRONGPASS invalid username-password pair\r\n",
                io::ErrorKind::PermissionDenied,
                "AUTH refused",
            ),
            (
                "redis://127.0.0.1/3",
                b"-NOAUTH Authentication required.\r\n",
                io::ErrorKind::PermissionDenied,
                "give it in the URL",
            ),
            (
                "redis://127.0.0.1/99",
                b"-ERR DB index is out of range\r\n",
                io::ErrorKind::InvalidInput,
                "SELECT 99 refused",
            ),
            (
                "redis://127.0.0.1/?protocol=resp3",
                b"-ERR unknown command 'HELLO'\r\n",
                io::ErrorKind::Unsupported,
                "HELLO 3",
            ),
        ];
        for (url, answer, kind, says) in cases {
            let err = RedisSetup.response(&route(url), answer).unwrap_err();
            assert_eq!(err.kind(), kind, "{url}: {err}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
    }
}
