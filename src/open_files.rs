//! The open-files limit: every client connection, upstream connection and tunnel is a file
//! descriptor, and distributions start processes with a soft limit of 1,024. At start the
//! gateway raises its soft limit to the hard limit (what nginx's `worker_rlimit_nofile`
//! lets an operator do by hand) and logs both; the hard limit itself is the operator's
//! (systemd `LimitNOFILE=`, `ulimit -Hn`).

/// The soft limit before and after, and the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFilesLimit {
    pub before: u64,
    pub after: u64,
    pub hard: u64,
}

/// Raises the soft open-files limit to the hard limit.
pub fn raise_to_hard_limit() -> std::io::Result<OpenFilesLimit> {
    let (before, hard) = rlimit::Resource::NOFILE.get()?;
    let after = rlimit::increase_nofile_limit(hard)?;
    Ok(OpenFilesLimit {
        before,
        after,
        hard,
    })
}

/// Raises the limit and says so in the log; a failure is logged, never fatal.
pub fn raise_and_log() {
    match raise_to_hard_limit() {
        Ok(l) if l.after > l.before => tracing::info!(
            from = l.before,
            to = l.after,
            hard = l.hard,
            "open files limit raised"
        ),
        Ok(l) => tracing::info!(limit = l.after, hard = l.hard, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open files limit"),
    }
}
