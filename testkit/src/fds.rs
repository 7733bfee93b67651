//! The process's open file descriptors, each known by its number and what
//! it points at (`socket:[inode]`, `pipe:[inode]`, `anon_inode:[eventpoll]`),
//! for the tests that check nothing is left open.
//!
//! A bare count misreads the descriptors of earlier tests: their servers'
//! threads may still be closing sockets when a count is taken, and then the
//! count drops below the baseline while the test runs. Comparing by
//! identity asks the real question: is any descriptor open now that was not
//! open before? Linux only (`/proc/self/fd`).

use crate::wait::settle;
use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

/// The descriptors open at one moment.
#[derive(Debug)]
pub struct Descriptors(BTreeSet<(u32, String)>);

impl Descriptors {
    /// Those open now, leaving out the one that reads the listing.
    pub fn open() -> Self {
        let own_listing = format!("/proc/{}/fd", std::process::id());
        let mut open = BTreeSet::new();
        for entry in fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
            let Ok(entry) = entry else { continue };
            let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // Gone between the listing and the look (a closing thread): it
            // is not open.
            let Ok(target) = fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if target != own_listing {
                open.insert((fd, target));
            }
        }
        Self(open)
    }

    /// Those open now that were not open at `self`.
    fn opened_since(&self) -> Vec<(u32, String)> {
        Self::open().0.difference(&self.0).cloned().collect()
    }

    /// Waits up to two seconds for every descriptor opened since `self` to
    /// be closed (a closing thread may be a moment behind); panics with
    /// those still open if some are left.
    pub fn assert_none_left(&self) {
        settle(
            "every descriptor opened to be closed",
            Duration::from_secs(2),
            || {
                let left = self.opened_since();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(left)
                }
            },
        );
    }
}
