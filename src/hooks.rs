//! User code the pool runs on a connection about to be leased: once before
//! its first lease ([`Builder::on_create`](crate::Builder::on_create)) and
//! at every lease ([`Builder::on_check_out`](crate::Builder::on_check_out)),
//! on the thread (or task) that leases it. A hook that fails or panics
//! costs the connection, not the request: the connection is closed and the
//! lease takes another.

use std::io;
use std::sync::Arc;

/// A hook on a connection; `Err` closes it.
pub(crate) type Hook<Conn> = Arc<dyn Fn(&mut Conn) -> io::Result<()> + Send + Sync>;

/// The hooks a pool was built with.
pub(crate) struct Hooks<Conn> {
    pub(crate) on_create: Option<Hook<Conn>>,
    pub(crate) on_check_out: Option<Hook<Conn>>,
}

impl<Conn> Hooks<Conn> {
    /// Whether any hook is set: the lease path looks at nothing else when
    /// none is.
    pub(crate) fn any(&self) -> bool {
        self.on_create.is_some() || self.on_check_out.is_some()
    }

    /// Runs the hooks due on `conn` before a lease (`on_create` only if it
    /// was never leased, `fresh`): whether it may be lent out.
    pub(crate) fn pass(&self, conn: &mut Conn, fresh: bool) -> bool {
        let due = [
            ("on_create", self.on_create.as_ref().filter(|_| fresh)),
            ("on_check_out", self.on_check_out.as_ref()),
        ];
        for (name, hook) in due {
            let Some(hook) = hook else { continue };
            match crate::unwind::guarded(name, || hook(conn)) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "leasehold: the {name} hook refused a connection");
                    return false;
                }
                // A panic, logged by `guarded`.
                None => return false,
            }
        }
        true
    }
}
