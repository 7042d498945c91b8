//! What `salespulse refresh` shows while a CRM sync reads: on a terminal, one indicatif bar
//! per list (rows of the CRM's count, requests, rows/s, ETA; a spinner where the CRM gives
//! no count); elsewhere (cron, CI, a pipe) plain log lines: when a list starts, every few
//! seconds while it reads, and when it ends. Log lines written while bars are drawn go
//! above the bars ([`LogWriter`]), so neither garbles the other.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use indicatif::{HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use salespulse::connectors::progress::Progress;

/// The bars being drawn, if any: log lines are printed above them.
static DRAWN: RwLock<Option<MultiProgress>> = RwLock::new(None);

/// A list with the CRM's count: a bar with the share and ETA.
const COUNTED: &str = "{prefix:>28} [{bar:30}] {human_pos}/{human_len} rows, {msg}, ETA {eta}";
/// A list without a count: a spinner with what has come so far.
const UNCOUNTED: &str = "{prefix:>28} {spinner} {human_pos} rows, {msg}";
/// A list read to its end.
const FINISHED: &str = "{prefix:>28} {msg}";

/// How often a list being read gets a plain log line.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// One list's counts.
#[derive(Debug)]
struct ListState {
    bar: Option<ProgressBar>,
    expected: Option<u64>,
    rows: u64,
    requests: u64,
    started: Instant,
    last_line: Instant,
    /// Starts minus finishes: a name read in parts is done when every part is.
    open: u32,
}

impl ListState {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-3)
    }

    /// `2,500/10,000 rows (25%), 3 requests, 850 rows/s, about 9 s left`.
    fn line(&self) -> String {
        let rate = self.rate();
        match self.expected.filter(|&e| e > 0) {
            Some(expected) => {
                let left = expected.saturating_sub(self.rows) as f64 / rate.max(1e-9);
                let eta = if self.rows > 0 && self.rows < expected { format!(", about {:.0} s left", left) } else { String::new() };
                format!(
                    "{}/{} rows ({:.0}%), {} requests, {:.0} rows/s{eta}",
                    HumanCount(self.rows),
                    HumanCount(expected),
                    100.0 * self.rows.min(expected) as f64 / expected as f64,
                    HumanCount(self.requests),
                    rate
                )
            }
            None => format!("{} rows, {} requests, {:.0} rows/s", HumanCount(self.rows), HumanCount(self.requests), rate),
        }
    }
}

/// A tenant's sync progress, drawn as bars or written as log lines.
#[derive(Debug)]
pub(crate) struct RefreshProgress {
    tenant: String,
    multi: Option<MultiProgress>,
    lists: Mutex<BTreeMap<String, ListState>>,
}

impl RefreshProgress {
    /// Bars when stderr is a terminal, log lines otherwise.
    pub(crate) fn for_stderr(tenant: &str) -> RefreshProgress {
        let multi = std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        if let (Some(m), Ok(mut drawn)) = (&multi, DRAWN.write()) {
            *drawn = Some(m.clone());
        }
        RefreshProgress { tenant: tenant.to_string(), multi, lists: Mutex::new(BTreeMap::new()) }
    }

    /// Log lines only (tests).
    #[cfg(test)]
    fn lines(tenant: &str) -> RefreshProgress {
        RefreshProgress { tenant: tenant.to_string(), multi: None, lists: Mutex::new(BTreeMap::new()) }
    }

    /// Removes the bars (the summary follows in plain text).
    pub(crate) fn finish(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
        if let Ok(mut drawn) = DRAWN.write() {
            *drawn = None;
        }
    }

    fn with_list(&self, list: &str, f: impl FnOnce(&mut ListState)) {
        if let Ok(mut lists) = self.lists.lock()
            && let Some(state) = lists.get_mut(list)
        {
            f(state);
        }
    }

    fn new_bar(&self, list: &str, expected: Option<u64>) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let bar = match expected {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template(COUNTED)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(UNCOUNTED).unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        let bar = multi.add(bar.with_prefix(format!("{}: {list}", self.tenant)).with_message("0 requests"));
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    }
}

impl Progress for RefreshProgress {
    fn list_started(&self, list: &str, expected_rows: Option<u64>) {
        let Ok(mut lists) = self.lists.lock() else { return };
        if let Some(state) = lists.get_mut(list) {
            // A list read in parts (product rows by deal chunks): the counts add up.
            state.open += 1;
            state.expected = match (state.expected, expected_rows) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
            if let Some(bar) = &state.bar {
                match state.expected {
                    Some(len) => bar.set_length(len),
                    None => bar.unset_length(),
                }
            }
            return;
        }
        let now = Instant::now();
        let bar = self.new_bar(list, expected_rows);
        if bar.is_none() {
            match expected_rows {
                Some(n) => tracing::info!("{}: {list}: reading {} rows", self.tenant, HumanCount(n)),
                None => tracing::info!("{}: {list}: reading", self.tenant),
            }
        }
        lists.insert(list.to_string(), ListState { bar, expected: expected_rows, rows: 0, requests: 0, started: now, last_line: now, open: 1 });
    }

    fn page_read(&self, list: &str, rows: u64) {
        let tenant = &self.tenant;
        self.with_list(list, |state| {
            state.rows += rows;
            state.requests += 1;
            match &state.bar {
                Some(bar) => {
                    // The CRM's count is taken when the list starts; rows added since make it longer.
                    if state.expected.is_some_and(|e| state.rows > e) {
                        state.expected = Some(state.rows);
                        bar.set_length(state.rows);
                    }
                    bar.set_position(state.rows);
                    bar.set_message(format!("{} requests, {:.0} rows/s", HumanCount(state.requests), state.rate()));
                }
                None if state.last_line.elapsed() >= LINE_EVERY => {
                    state.last_line = Instant::now();
                    tracing::info!("{tenant}: {list}: {}", state.line());
                }
                None => {}
            }
        });
    }

    fn list_finished(&self, list: &str) {
        let tenant = &self.tenant;
        self.with_list(list, |state| {
            state.open = state.open.saturating_sub(1);
            if state.open > 0 {
                return;
            }
            let done = format!(
                "{} rows in {} requests, {:.1} s, {:.0} rows/s",
                HumanCount(state.rows),
                HumanCount(state.requests),
                state.started.elapsed().as_secs_f64(),
                state.rate()
            );
            match &state.bar {
                Some(bar) => {
                    bar.set_style(ProgressStyle::with_template(FINISHED).unwrap_or_else(|_| ProgressStyle::default_bar()));
                    bar.finish_with_message(format!("done: {done}"));
                }
                None => tracing::info!("{tenant}: {list}: done, {done}"),
            }
        });
    }
}

/// Log output to stderr that steps around the progress bars while they are drawn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

/// One formatted log event, written when dropped.
#[derive(Debug)]
pub(crate) struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let write = || {
            let _ = std::io::stderr().lock().write_all(&self.0);
        };
        match DRAWN.read().ok().and_then(|d| d.clone()) {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(p: &RefreshProgress, list: &str) -> (Option<u64>, u64, u64, u32) {
        let lists = p.lists.lock().unwrap();
        let s = &lists[list];
        (s.expected, s.rows, s.requests, s.open)
    }

    #[test]
    fn counts_rows_and_requests_per_list_and_adds_up_lists_read_in_parts() {
        let p = RefreshProgress::lines("acme");
        p.list_started("deals", Some(120));
        p.page_read("deals", 50);
        p.page_read("deals", 70);
        p.list_finished("deals");
        assert_eq!(state_of(&p, "deals"), (Some(120), 120, 2, 0));

        p.list_started("product rows", Some(10));
        p.list_started("product rows", Some(5));
        p.page_read("product rows", 10);
        p.list_finished("product rows");
        assert_eq!(state_of(&p, "product rows"), (Some(15), 10, 1, 1));
        p.page_read("product rows", 5);
        p.list_finished("product rows");
        assert_eq!(state_of(&p, "product rows"), (Some(15), 15, 2, 0));

        // Without a count, the line has no share or ETA.
        p.list_started("leads", None);
        p.page_read("leads", 250);
        let line = p.lists.lock().unwrap()["leads"].line();
        assert!(line.starts_with("250 rows, 1 requests, "), "{line}");
        assert!(!line.contains('%') && !line.contains("left"), "{line}");
    }

    #[test]
    fn the_bar_templates_parse() {
        for template in [COUNTED, UNCOUNTED, FINISHED] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn a_counted_line_shows_the_share_and_time_left() {
        let p = RefreshProgress::lines("acme");
        p.list_started("deals", Some(10_000));
        p.page_read("deals", 2_500);
        let line = p.lists.lock().unwrap()["deals"].line();
        assert!(line.starts_with("2,500/10,000 rows (25%), 1 requests, "), "{line}");
        assert!(line.contains("rows/s, about ") && line.ends_with(" s left"), "{line}");
        // A page for a list never started is ignored rather than invented.
        p.page_read("ghost", 5);
        assert!(!p.lists.lock().unwrap().contains_key("ghost"));
    }
}
