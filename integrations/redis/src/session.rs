//! Which commands leave server-side state on a connection that the next
//! holder of a pooled connection must not inherit: a connection that ran
//! one is closed when given back instead of being lent out again.
//!
//! The requests are read as the redis crate packs them (an array of bulk
//! strings per command), looking at each command's name only, so the cost
//! is a few comparisons per command.
//!
//! | commands | state | cleared by |
//! |---|---|---|
//! | `MULTI` | a transaction is open | `EXEC`, `DISCARD` |
//! | `WATCH` | keys are watched | `EXEC`, `DISCARD`, `UNWATCH` |
//! | `SELECT`, `AUTH`, `HELLO`, `RESET`, `CLIENT …`, `READONLY`, `READWRITE`, `SUBSCRIBE`, `PSUBSCRIBE`, `SSUBSCRIBE`, `MONITOR` | another database, user, protocol, name, reply mode, tracking, or subscriber/monitor mode | nothing: closed when given back |
//!
//! A request that is not an array of bulk strings (an inline command) is
//! taken to change the session, to be safe.

/// The session state a connection's requests left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SessionState {
    /// A `MULTI` without its `EXEC` or `DISCARD`.
    pub(crate) multi: bool,
    /// A `WATCH` without its `EXEC`, `DISCARD` or `UNWATCH`.
    pub(crate) watch: bool,
    /// A command whose effect lasts as long as the connection.
    pub(crate) changed: bool,
}

impl SessionState {
    /// Whether the next holder would inherit something.
    pub(crate) fn is_dirty(&self) -> bool {
        self.multi || self.watch || self.changed
    }

    /// Takes the effect of each command in the packed `request` into
    /// account.
    pub(crate) fn note(&mut self, request: &[u8]) {
        let mut at = 0;
        while at < request.len() {
            match command(request, &mut at) {
                Some(name) => self.apply(name),
                None => {
                    self.changed = true;
                    return;
                }
            }
        }
    }

    fn apply(&mut self, name: &[u8]) {
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            // The names of most commands have lengths no stateful one has.
            3 => {}
            4 if is("EXEC") => (self.multi, self.watch) = (false, false),
            4 if is("AUTH") => self.changed = true,
            5 if is("MULTI") => self.multi = true,
            5 if is("WATCH") => self.watch = true,
            5 if is("HELLO") || is("RESET") => self.changed = true,
            6 if is("SELECT") || is("CLIENT") => self.changed = true,
            7 if is("DISCARD") => (self.multi, self.watch) = (false, false),
            // Inside MULTI it is queued, and runs with the EXEC.
            7 if is("UNWATCH") && !self.multi => self.watch = false,
            7 if is("MONITOR") => self.changed = true,
            8 if is("READONLY") => self.changed = true,
            9 if is("READWRITE") || is("SUBSCRIBE") => self.changed = true,
            10 if is("PSUBSCRIBE") || is("SSUBSCRIBE") => self.changed = true,
            _ => {}
        }
    }
}

/// The name of the command at `*at`, moving `*at` past the command;
/// `None` if it is not an array of bulk strings.
fn command<'a>(request: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let args = header(request, at, b'*')?;
    let mut name = None;
    for _ in 0..args {
        let len = header(request, at, b'$')?;
        let end = at.checked_add(len)?;
        let arg = request.get(*at..end)?;
        if request.get(end..end + 2)? != b"\r\n" {
            return None;
        }
        name.get_or_insert(arg);
        *at = end + 2;
    }
    name
}

/// The number after `kind` in the line at `*at`, moving `*at` past it.
fn header(request: &[u8], at: &mut usize, kind: u8) -> Option<usize> {
    let rest = request.get(*at..)?;
    if rest.first() != Some(&kind) {
        return None;
    }
    let newline = rest.iter().position(|&b| b == b'\n')?;
    let digits = rest.get(1..newline.checked_sub(1)?)?;
    if digits.is_empty() || rest[newline - 1] != b'\r' {
        return None;
    }
    let n = digits.iter().try_fold(0usize, |n, &d| {
        d.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))?
    })?;
    *at += newline + 1;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(commands: &[&[&str]]) -> SessionState {
        let mut session = SessionState::default();
        for args in commands {
            let mut cmd = redis::Cmd::new();
            for arg in *args {
                cmd.arg(*arg);
            }
            session.note(&cmd.get_packed_command());
        }
        session
    }

    #[test]
    fn plain_commands_leave_nothing() {
        assert!(!after(&[&["GET", "k"], &["SET", "k", "v"], &["PING"]]).is_dirty());
        let mut pipeline = redis::pipe();
        pipeline.get("a").set("b", 1).incr("c", 2);
        let mut session = SessionState::default();
        session.note(&pipeline.get_packed_pipeline());
        assert!(!session.is_dirty());
    }

    #[test]
    fn a_transaction_is_dirty_until_exec_or_discard() {
        assert!(after(&[&["MULTI"], &["INCR", "k"]]).multi);
        assert!(!after(&[&["multi"], &["INCR", "k"], &["exec"]]).is_dirty());
        assert!(!after(&[&["WATCH", "k"], &["MULTI"], &["DISCARD"]]).is_dirty());
        assert!(!after(&[&["WATCH", "k"], &["UNWATCH"]]).is_dirty());
        assert!(after(&[&["WATCH", "k"], &["MULTI"], &["UNWATCH"]]).is_dirty());
        let mut atomic = redis::pipe();
        atomic.atomic().set("k", 1).get("k");
        let mut session = SessionState::default();
        session.note(&atomic.get_packed_pipeline());
        assert!(!session.is_dirty());
    }

    #[test]
    fn commands_with_lasting_effects_stay_dirty() {
        for args in [
            &["SELECT", "2"][..],
            &["CLIENT", "SETNAME", "x"],
            &["subscribe", "news"],
            &["MONITOR"],
            &["HELLO", "3"],
        ] {
            assert!(after(&[args, &["EXEC"]]).changed, "{args:?}");
        }
    }

    #[test]
    fn inline_commands_count_as_changes() {
        let mut session = SessionState::default();
        session.note(b"PING\r\n");
        assert!(session.changed);
    }
}
