//! The dashboard rendered into a `TestBackend` from hand-built snapshots.

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::client::{ClientState, OperationKind, operation_index, state_index};
use crate::metrics::Snapshot;
use crate::tui::{App, History, RunInfo};

fn info() -> RunInfo {
    RunInfo {
        target: "embedded 127.0.0.1:5683".into(),
        fleet: "fleets/demo.toml".into(),
        clients: 1000,
        stop_at: Duration::from_secs(120),
        stop_timeout: Duration::from_secs(10),
    }
}

/// 75 s into a run: 812 registered; register has latencies, errors and a timeout; update has
/// requests but no answers yet.
fn snapshot(seconds: u64, registers: u64, updates: u64) -> Snapshot {
    let mut s = Snapshot {
        elapsed: Duration::from_secs(seconds),
        ..Snapshot::default()
    };
    s.states[state_index(ClientState::Registered)] = 812;
    s.states[state_index(ClientState::Registering)] = 3;
    s.traffic.datagrams_in = seconds * 100;
    s.traffic.datagrams_out = seconds * 120;
    // The server reads (10/s, 2 errors), observes (2/s) and once wrote attributes.
    let read = &mut s.operations[operation_index(OperationKind::Read)];
    (read.total, read.error) = (seconds * 10, 2);
    read.handling.record_n(250, 98).unwrap();
    read.handling.record_n(4_000, 2).unwrap();
    s.operations[operation_index(OperationKind::Observe)].total = seconds * 2;
    s.operations[operation_index(OperationKind::WriteAttributes)].total = 5;
    let r = &mut s.requests[0];
    // Two still in flight; 7 retransmissions.
    let ok = registers.saturating_sub(12);
    (r.sent, r.ok, r.error, r.timeout) = (registers, ok, 6, 4);
    r.retransmissions = 7;
    r.codes = vec![(Some(0x41), ok), (Some(0x84), 5), (None, 1)];
    // From the due time: 98 at 10 ms, one at 100 ms, one at 12 s. From the send: much less.
    for (us, service_us, n) in [
        (10_000, 1_000, 98),
        (100_000, 5_000, 1),
        (12_000_000, 12_000_000, 1),
    ] {
        r.latency.record_n(us, n).unwrap();
        r.service.record_n(service_us, n).unwrap();
    }
    s.requests[1].sent = updates;
    s
}

fn history() -> History {
    let mut h = History::default();
    h.push(snapshot(74, 960, 45));
    h.push(snapshot(75, 1000, 50));
    h
}

fn render(app: &App, info: &RunInfo, history: &History) -> String {
    render_at(80, 24, app, info, history)
}

fn render_at(width: u16, height: u16, app: &App, info: &RunInfo, history: &History) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| app.draw(f, info, history)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol())
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The words of the screen line that contains `needle`, borders dropped.
fn row_of(screen: &str, needle: &str) -> Vec<String> {
    let line = screen
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{screen}"));
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn header_shows_target_times_clients_gauge_and_rates() {
    let screen = render(&App::new(), &info(), &history());
    assert!(
        screen.contains("target embedded 127.0.0.1:5683  fleet fleets/demo.toml"),
        "{screen}"
    );
    // 75 s elapsed, the stop at 120 s.
    assert!(screen.contains("elapsed 01:15  stop in 00:45"), "{screen}");
    assert!(
        screen.contains("clients registering 3  registered 812"),
        "{screen}"
    );
    assert!(screen.contains("812 / 1000 registered"), "{screen}");
    assert!(!screen.contains("PAUSED"), "{screen}");
}

#[test]
fn the_remaining_time_turns_into_the_stop_once_due() {
    let mut h = History::default();
    h.push(snapshot(125, 1000, 50));
    let screen = render(&App::new(), &info(), &h);
    assert!(screen.contains("stopping (at most 00:05 more)"), "{screen}");
}

#[test]
fn table_rows_show_counts_rates_errors_and_percentiles() {
    let screen = render(&App::new(), &info(), &history());
    let header = row_of(&screen, "sent     /s");
    assert_eq!(
        header,
        [
            "sent", "/s", "errors", "timeout", "retx", "flight", "p50", "p99", "max"
        ]
    );
    // The corrected p99 is 100 ms, from the send 5 ms: both shown.
    assert_eq!(
        row_of(&screen, "│register "),
        [
            "register", "1000", "40.0", "6", "4", "7", "2", "10.0", "100", "(5.00)", "12.0s"
        ]
    );
    assert_eq!(
        row_of(&screen, "│update "),
        ["update", "50", "5.0", "0", "0", "0", "50", "-", "-", "-"]
    );
    assert_eq!(
        row_of(&screen, "│deregister "),
        ["deregister", "0", "0.0", "0", "0", "0", "0", "-", "-", "-"]
    );
    assert!(screen.contains("retx: retransmitted"), "{screen}");
}

#[test]
fn a_wide_table_adds_p90_and_p99_9_and_longer_headings() {
    let screen = render_at(120, 30, &App::new(), &info(), &history());
    assert_eq!(
        row_of(&screen, "sent     /s"),
        [
            "sent", "/s", "errors", "timeout", "retrans", "in", "flight", "p50", "p90", "p99",
            "p99.9", "max"
        ]
    );
    assert_eq!(
        row_of(&screen, "│register "),
        [
            "register", "1000", "40.0", "6", "4", "7", "2", "10.0", "10.0", "100", "(5.00)",
            "12.0s", "12.0s"
        ]
    );
}

#[test]
fn p99_from_the_send_is_left_out_when_it_tells_the_same_story() {
    let mut s = snapshot(75, 1000, 50);
    s.requests[0].service = s.requests[0].latency.clone();
    let mut h = History::default();
    h.push(s);
    let screen = render(&App::new(), &info(), &h);
    assert_eq!(row_of(&screen, "│register ")[8], "100");
    assert_eq!(row_of(&screen, "│register ")[9], "12.0s");
}

#[test]
fn the_selected_operation_has_the_chart_and_the_errors_panel() {
    let mut app = App::new();
    let screen = render(&app, &info(), &history());
    assert!(
        screen.contains("register latency by percentile (log)"),
        "{screen}"
    );
    assert!(screen.contains("99.99%"), "nines axis: {screen}");
    // 220 datagrams a second, in and out together.
    assert!(screen.contains("datagrams/s 220 · max 220"), "{screen}");
    assert!(screen.contains("register errors"), "{screen}");
    // Timeouts first, then codes by count; success codes are not errors.
    let at = |line: &str| {
        screen
            .find(line)
            .unwrap_or_else(|| panic!("no {line:?} in\n{screen}"))
    };
    assert!(at("│      4 timeout") < at("│      5 4.04 Not Found"));
    assert!(at("│      5 4.04 Not Found") < at("│      1 RST"));
    assert!(!screen.contains("2.01"), "{screen}");
    assert!(screen.contains("from due · from send"), "legend: {screen}");

    app.on_key(key(KeyCode::Tab));
    let screen = render(&app, &info(), &history());
    assert!(
        screen.contains("update latency by percentile (log)"),
        "{screen}"
    );
    assert!(screen.contains("no answers yet"), "{screen}");
    assert!(screen.contains("update errors"), "{screen}");
    assert!(!screen.contains("Not Found"), "{screen}");

    app.on_key(key(KeyCode::Up));
    app.on_key(key(KeyCode::Up));
    let screen = render(&app, &info(), &history());
    assert!(screen.contains("notify latency by percentile"), "{screen}");
    assert!(screen.contains("NON notifications get none"), "{screen}");
}

#[test]
fn help_overlay_shows_on_question_mark() {
    let mut app = App::new();
    assert!(!render(&app, &info(), &history()).contains("select the request kind"));
    app.on_key(key(KeyCode::Char('?')));
    let screen = render(&app, &info(), &history());
    assert!(
        screen.contains("Tab, arrows  select the request kind"),
        "{screen}"
    );
    assert!(screen.contains("p, space     pause / resume"), "{screen}");
}

#[test]
fn paused_marker_rate_factor_and_stopping_show_in_the_header() {
    let mut app = App::new();
    app.on_key(key(KeyCode::Char('p')));
    app.on_key(key(KeyCode::Char('+')));
    let screen = render(&app, &info(), &history());
    assert!(screen.contains(" PAUSED "), "{screen}");
    assert!(screen.contains(" PAUSED   start rate ×1.5"), "{screen}");

    app.on_key(key(KeyCode::Char('q')));
    let screen = render(&app, &info(), &history());
    assert!(!screen.contains("PAUSED"), "{screen}");
    assert!(
        screen.contains("stopping: clients de-registering"),
        "{screen}"
    );
    assert!(screen.contains("q again leaves now"), "{screen}");
}

#[test]
fn an_empty_run_draws_without_numbers() {
    let screen = render(&App::new(), &RunInfo::default(), &History::default());
    assert!(screen.contains("clients none yet"), "{screen}");
    assert!(screen.contains("0 / 0 registered"), "{screen}");
    assert!(screen.contains("no answers yet"), "{screen}");
}

/// A DTLS run 75 s in: 1,010 handshakes begun, 990 done (490 in the last second), 5 failed,
/// one session lost since.
fn dtls_history() -> History {
    let mut h = History::default();
    let mut s = snapshot(74, 960, 45);
    s.handshakes.started = 520;
    s.handshakes.ok = 500;
    h.push(s);
    let mut s = snapshot(75, 1000, 50);
    let hs = &mut s.handshakes;
    (hs.started, hs.ok, hs.failed) = (1_010, 990, 5);
    hs.failures = vec![("handshake_failure".into(), 2), ("timeout".into(), 3)];
    hs.lost = vec![("closed".into(), 1)];
    for (us, n) in [(1_200, 980), (3_400, 9), (120_000, 1)] {
        hs.latency.record_n(us, n).unwrap();
    }
    h.push(s);
    h
}

#[test]
fn a_dtls_run_shows_its_handshakes_between_the_table_and_the_chart() {
    let screen = render(&App::new(), &info(), &dtls_history());
    let at = |needle: &str| {
        screen
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in\n{screen}"))
    };
    assert!(at("│deregister ") < at("dtls handshakes"), "{screen}");
    assert!(at("dtls handshakes") < at("register latency by percentile"));
    // 490 completed over the last second; 1,010 - 990 - 5 still handshaking.
    assert_eq!(
        row_of(&screen, "ok 990"),
        [
            "ok", "990", "(490/s)", "failed", "5", "in", "progress", "15", "p50", "1.20", "p99",
            "3.40", "max", "120"
        ]
    );
    // Most frequent reason first; sessions lost after their handshake beside them.
    assert!(
        screen.contains("failures timeout 3, handshake_failure 2  sessions lost closed 1"),
        "{screen}"
    );
    assert!(
        !screen.contains("aborted"),
        "shown only when some were: {screen}"
    );
}

#[test]
fn a_dtls_run_with_nothing_failed_yet_says_so() {
    let mut h = History::default();
    let mut s = snapshot(1, 10, 0);
    (s.handshakes.started, s.handshakes.aborted) = (40, 2);
    h.push(s);
    let screen = render(&App::new(), &info(), &h);
    assert_eq!(
        row_of(&screen, "ok 0"),
        [
            "ok", "0", "(0.0/s)", "failed", "0", "in", "progress", "38", "aborted", "2", "p50",
            "-", "p99", "-", "max", "-"
        ]
    );
    assert!(screen.contains("failures none"), "{screen}");
}

#[test]
fn a_nosec_run_has_no_dtls_panel_and_keeps_the_rows_for_the_chart() {
    // Tall enough for the DTLS panel without compacting the rest.
    let render =
        |app: &App, info: &RunInfo, history: &History| render_at(80, 30, app, info, history);
    let plain = render(&App::new(), &info(), &history());
    assert!(!plain.contains("dtls"), "{plain}");
    assert!(!plain.contains("handshake"), "{plain}");
    let dtls = render(&App::new(), &info(), &dtls_history());
    let chart_rows = |screen: &str| {
        let lines: Vec<&str> = screen.lines().collect();
        let top = lines
            .iter()
            .position(|l| l.contains("latency by percentile"));
        let bottom = lines
            .iter()
            .rposition(|l| l.contains("from due · from send"));
        bottom.unwrap() - top.unwrap()
    };
    assert_eq!(chart_rows(&plain), chart_rows(&dtls) + 3, "{plain}\n{dtls}");
}

#[test]
fn an_emulated_link_shows_what_it_did_in_the_header() {
    let plain = render(&App::new(), &info(), &history());
    assert!(!plain.contains("network"), "{plain}");
    let mut h = history();
    let mut s = snapshot(76, 1000, 50);
    let n = &mut s.traffic.network;
    (n.dropped, n.delayed, n.duplicated, n.reordered, n.rebound) = (212, 5013, 9, 17, 40);
    h.push(s);
    let screen = render(&App::new(), &info(), &h);
    assert!(
        screen
            .contains("network dropped 212  delayed 5013  duplicated 9  reordered 17  rebound 40"),
        "{screen}"
    );
    // The table still has all its rows below the longer header.
    assert!(screen.contains("notify"), "{screen}");
}

#[test]
fn firmware_updates_show_in_the_header_below_the_network() {
    let plain = render(&App::new(), &info(), &history());
    assert!(!plain.contains("firmware"), "{plain}");
    let mut h = history();
    let mut s = snapshot(76, 1000, 50);
    s.traffic.network.dropped = 3;
    let f = &mut s.firmware;
    (f.started, f.downloaded, f.updated) = (120, 80, 60);
    f.failed = vec![("integrity".into(), 4), ("connection-lost".into(), 2)];
    f.download_time.record(95_000_000).unwrap();
    h.push(s);
    let screen = render(&App::new(), &info(), &h);
    let line = |text: &str| {
        screen
            .lines()
            .position(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no {text:?} in\n{screen}"))
    };
    let firmware = line("firmware started 120  downloaded 80  updated 60  failed 6");
    assert_eq!(firmware, line("network dropped 3") + 1, "{screen}");
    assert!(screen.contains("download p50 01:35"), "{screen}");
    assert!(screen.contains("notify"), "{screen}");
}

/// Ten seconds of a ramp: registering clients turn into registered ones.
fn ramp_history() -> History {
    let mut h = History::default();
    for second in 66..=75 {
        let mut s = snapshot(second, second * 13, second);
        let done = (second - 66) * 90;
        s.states[state_index(ClientState::Registered)] = done;
        s.states[state_index(ClientState::Registering)] = 900 - done;
        h.push(s);
    }
    h
}

fn press(app: &mut App, c: char) {
    app.on_key(key(KeyCode::Char(c)));
}

#[test]
fn at_80x24_v_shows_each_panel_in_turn_with_its_figures() {
    let mut app = App::new();
    let h = ramp_history();
    let screen = render(&app, &info(), &h);
    // Always there: header, table, throughput, errors, the keys.
    for needle in [
        "elapsed 01:15",
        "810 / 1000 registered",
        "│register ",
        "│notify ",
        "datagrams/s 220",
        "register errors",
        "│      4 timeout",
        "v panel",
        "? help",
    ] {
        assert!(screen.contains(needle), "{needle:?} in\n{screen}");
    }
    assert!(screen.contains("register latency by percentile (log)"));
    assert!(!screen.contains("server operations ·"), "{screen}");

    press(&mut app, 'v');
    let screen = render(&app, &info(), &h);
    assert!(
        screen.contains("server operations · ms to handle"),
        "{screen}"
    );
    assert!(!screen.contains("latency by percentile"), "{screen}");
    // Names shortened to fit 48 columns; p50 0.25 ms, p99 4 ms.
    assert_eq!(
        row_of(&screen, "│read ")[..6],
        ["read", "750", "10.0", "2", "0.25", "4.00"]
    );
    assert_eq!(
        row_of(&screen, "│observe ")[..5],
        ["observe", "150", "2.0", "0", "-"]
    );
    assert!(screen.contains("│write-attr "), "{screen}");
    assert!(!screen.contains("│discover"), "never asked: {screen}");

    press(&mut app, 'v');
    let screen = render(&app, &info(), &h);
    assert!(screen.contains("clients by state"), "{screen}");
    assert!(screen.contains("registering 90 registered 810"), "{screen}");
    assert!(
        screen.contains("01:06") && screen.contains("01:15"),
        "{screen}"
    );

    press(&mut app, 'v');
    let screen = render(&app, &info(), &h);
    assert!(
        screen.contains("register latency by percentile"),
        "{screen}"
    );
}

#[test]
fn a_large_terminal_shows_every_panel_at_once_and_v_says_so() {
    let mut app = App::new();
    let h = ramp_history();
    let screen = render_at(140, 45, &app, &info(), &h);
    for needle in [
        "register latency by percentile (log)",
        "99.99%",
        "server operations · ms to handle",
        "│write-attributes ",
        "clients by state",
        "registering 90 registered 810",
        "datagrams/s 220",
        "register errors",
        "in flight",
        "p99.9",
    ] {
        assert!(screen.contains(needle), "{needle:?} in\n{screen}");
    }
    let read = row_of(&screen, "│read ");
    let at = read.iter().position(|w| w == "read").unwrap();
    assert_eq!(
        read[at..at + 6],
        ["read", "750", "10.0", "2", "0.25", "4.00"]
    );
    app.set_every_view_shown(true);
    press(&mut app, 'v');
    assert_eq!(app.view, crate::tui::View::Latency, "nothing to switch");
    let screen = render_at(140, 45, &app, &info(), &h);
    assert!(
        screen.contains("every panel is on screen: nothing to switch"),
        "{screen}"
    );
}

#[test]
fn without_server_requests_or_samples_the_panels_say_so() {
    let mut app = App::new();
    press(&mut app, 'v');
    let screen = render(&app, &info(), &History::default());
    assert!(
        screen.contains("none yet: the server asked nothing"),
        "{screen}"
    );
    press(&mut app, 'v');
    let screen = render(&app, &info(), &History::default());
    assert!(screen.contains("no clients yet"), "{screen}");
}

#[test]
fn the_latency_axis_is_logarithmic_with_decade_labels() {
    use super::latency::{decade_label, decades, log_ms};
    assert!((log_ms(1_000) - 0.0).abs() < 1e-12, "1 ms");
    assert!((log_ms(10_000) - 1.0).abs() < 1e-12);
    assert!(
        (log_ms(1) + 3.0).abs() < 1e-12,
        "1 µs, the histogram's floor"
    );
    assert!((log_ms(0) + 3.0).abs() < 1e-12, "no -inf");
    // 1 ms to 12 s: five decades, 1 ms to 100 s. The 10 ms majority sits a fifth of the way up,
    // where a linear axis would put it 0.08% up, on the floor.
    assert_eq!(decades(1_000, 12_000_000), (0, 5));
    let (bottom, top) = decades(1_000, 12_000_000);
    let height = (log_ms(10_000) - f64::from(bottom)) / f64::from(top - bottom);
    assert!((height - 0.2).abs() < 1e-12, "{height}");
    // A single value still gets a decade around it.
    assert_eq!(decades(5_000, 5_000), (0, 1));
    assert_eq!(decades(1_000, 1_000), (0, 1));
    let labels: Vec<String> = (-3..=5).map(decade_label).collect();
    assert_eq!(
        labels,
        [
            "1µs", "10µs", "100µs", "1ms", "10ms", "100ms", "1s", "10s", "100s"
        ]
    );

    // The register curve spans 1 ms to 12 s: on a short chart, the two ends.
    let screen = render(&App::new(), &info(), &history());
    assert!(screen.contains("│100s│"), "{screen}");
    assert!(screen.contains("│1ms │"), "{screen}");
    assert!(!screen.contains("│10ms│"), "{screen}");
    // On a tall one, every decade.
    let screen = render_at(140, 45, &App::new(), &info(), &history());
    for label in ["1ms", "10ms", "100ms", "1s", "10s", "100s"] {
        let tick = format!("│{label:<5}│");
        assert!(screen.contains(&tick), "{tick}: {screen}");
    }
}

#[test]
fn keys_that_cannot_act_say_why_in_the_footer() {
    let mut app = App::new();
    app.set_ramp_finished(true);
    press(&mut app, 'p');
    let screen = render(&app, &info(), &history());
    assert!(
        screen.contains("ramp finished: every client has started, nothing to pause"),
        "{screen}"
    );
    assert!(!screen.contains("PAUSED"), "{screen}");
    press(&mut app, '+');
    let screen = render(&app, &info(), &history());
    assert!(screen.contains("no start rate to change"), "{screen}");
    assert!(!screen.contains("start rate ×"), "{screen}");
    // The next key that acts clears the message.
    app.on_key(key(KeyCode::Tab));
    let screen = render(&app, &info(), &history());
    assert!(!screen.contains("ramp finished"), "{screen}");
    assert!(screen.contains("q stop · Tab/←→ request"), "{screen}");
}

#[test]
fn a_pause_or_rate_left_from_the_ramp_is_not_shown_once_it_is_over() {
    let mut app = App::new();
    press(&mut app, 'p');
    press(&mut app, '+');
    assert!(render(&app, &info(), &history()).contains(" PAUSED   start rate ×1.5"));
    app.set_ramp_finished(true);
    let screen = render(&app, &info(), &history());
    assert!(!screen.contains("PAUSED"), "{screen}");
    assert!(!screen.contains("start rate ×"), "{screen}");
}

#[test]
fn at_80x24_a_run_with_everything_compacts_the_header_and_keeps_every_figure() {
    let mut app = App::new();
    let mut h = dtls_history();
    let mut s = snapshot(76, 1000, 50);
    s.handshakes = h.latest().handshakes.clone();
    s.traffic.network.dropped = 3;
    s.firmware.started = 4;
    for kind in 4..7 {
        s.requests[kind].sent = 3;
    }
    h.push(s);
    app.show_kinds(7);
    let screen = render(&app, &info(), &h);
    for needle in [
        "lwm2m-swarm · embedded 127.0.0.1:5683",
        "elapsed 01:16",
        "clients registering 3  registered 812",
        "812 / 1000 registered",
        "rates requests",
        "network dropped 3",
        "firmware started 4",
        "│bootstrap ",
        "│send ",
        "│download ",
        "dtls ok 990",
        "register latency by percentile (log)",
        "datagrams/s",
        "register errors",
        "? help",
    ] {
        assert!(screen.contains(needle), "{needle:?} in\n{screen}");
    }
    // The chart still has rows for its curve and both axes.
    let lines: Vec<&str> = screen.lines().collect();
    let top = lines
        .iter()
        .position(|l| l.contains("latency by percentile"));
    let bottom = lines
        .iter()
        .rposition(|l| l.contains("from due · from send"));
    assert!(bottom.unwrap() - top.unwrap() >= 5, "{screen}");
    // The most frequent error still has its line.
    assert!(screen.contains("│      4 timeout"), "{screen}");
}

#[test]
fn the_header_rates_are_totals_per_second() {
    let screen = render(&App::new(), &info(), &history());
    // 40 registers + 5 updates; 10 reads + 2 observes; 100 datagrams in, 120 out.
    assert!(
        screen.contains(
            "rates requests 45.0/s  server operations 12.0/s  datagrams in 100/s  out 120/s"
        ),
        "{screen}"
    );
}
