//! The loop against a fake fleet and scripted keys, on a `TestBackend`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

use super::*;

/// Finishes `linger` snapshots after being stopped, or after `runs_for` snapshots.
#[derive(Default)]
struct FakeFleet {
    /// Clients started so far (all registered).
    started: u64,
    /// Where every snapshot is in the run.
    elapsed: Duration,
    snapshots: Cell<u32>,
    stopped_at: Cell<Option<u32>>,
    linger: u32,
    runs_for: Option<u32>,
    pauses: RefCell<Vec<bool>>,
    rates: RefCell<Vec<f64>>,
}

impl Controls for FakeFleet {
    fn snapshot(&self) -> Snapshot {
        self.snapshots.set(self.snapshots.get() + 1);
        let mut s = Snapshot {
            elapsed: self.elapsed,
            ..Snapshot::default()
        };
        s.states[crate::client::state_index(crate::client::ClientState::Registered)] = self.started;
        s
    }
    fn stop(&self) {
        self.stopped_at.set(Some(self.snapshots.get()));
    }
    fn pause_starts(&self, paused: bool) {
        self.pauses.borrow_mut().push(paused);
    }
    fn is_finished(&self) -> bool {
        let n = self.snapshots.get();
        self.stopped_at
            .get()
            .is_some_and(|at| n >= at + self.linger)
            || self.runs_for.is_some_and(|end| n >= end)
    }
    fn set_start_rate(&self, factor: f64) {
        self.rates.borrow_mut().push(factor);
    }
}

fn press(c: char) -> Event {
    Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Runs the loop over `keys`; after them, ticks without input.
fn drive_with(fleet: &FakeFleet, keys: Vec<Event>, interrupts: &AtomicU32) -> TuiExit {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut keys = VecDeque::from(keys);
    let info = RunInfo {
        clients: CLIENTS,
        stop_at: Duration::from_secs(60),
        ..RunInfo::default()
    };
    drive(&mut terminal, fleet, &info, interrupts, |_| {
        Ok(keys.pop_front())
    })
    .unwrap()
}

/// The clients the runs in these tests start.
const CLIENTS: u64 = 10;

#[test]
fn once_every_client_started_or_the_stop_began_p_and_plus_leave_the_engine_alone() {
    let fleet = FakeFleet {
        started: CLIENTS,
        linger: 1,
        ..FakeFleet::default()
    };
    let outcome = drive_with(
        &fleet,
        vec![press('p'), press('+'), press('-'), press('q')],
        &AtomicU32::new(0),
    );
    assert_eq!(outcome, TuiExit::Stopped);
    assert!(fleet.pauses.borrow().is_empty());
    assert!(fleet.rates.borrow().is_empty());

    // Nor once the run's own stop has begun, with clients still to start.
    let fleet = FakeFleet {
        elapsed: Duration::from_secs(61),
        linger: 1,
        ..FakeFleet::default()
    };
    drive_with(
        &fleet,
        vec![press('p'), press('+'), press('q')],
        &AtomicU32::new(0),
    );
    assert!(fleet.pauses.borrow().is_empty());
    assert!(fleet.rates.borrow().is_empty());
}

#[test]
fn q_stops_the_fleet_and_the_loop_draws_until_it_is_finished() {
    let fleet = FakeFleet {
        started: CLIENTS - 1,
        linger: 3,
        ..FakeFleet::default()
    };
    let outcome = drive_with(
        &fleet,
        vec![press('p'), press('+'), press('q')],
        &AtomicU32::new(0),
    );
    assert_eq!(outcome, TuiExit::Stopped);
    let stopped = fleet.stopped_at.get().expect("q stops the fleet");
    assert_eq!(
        fleet.snapshots.get(),
        stopped + 3,
        "kept drawing while stopping"
    );
    assert_eq!(*fleet.pauses.borrow(), [true]);
    assert_eq!(*fleet.rates.borrow(), [1.5]);
}

#[test]
fn a_run_that_ends_on_its_own_is_completed_and_a_second_q_abandons() {
    let fleet = FakeFleet {
        runs_for: Some(2),
        ..FakeFleet::default()
    };
    assert_eq!(
        drive_with(&fleet, vec![], &AtomicU32::new(0)),
        TuiExit::Completed
    );
    assert_eq!(fleet.stopped_at.get(), None);

    let fleet = FakeFleet {
        linger: 1_000,
        ..FakeFleet::default()
    };
    let outcome = drive_with(&fleet, vec![press('q'), press('q')], &AtomicU32::new(0));
    assert_eq!(outcome, TuiExit::Abandoned);
}

#[test]
fn a_sigint_counts_as_q() {
    let fleet = FakeFleet {
        linger: 2,
        ..FakeFleet::default()
    };
    let interrupts = AtomicU32::new(0);
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut ticks = 0;
    let outcome = drive(
        &mut terminal,
        &fleet,
        &RunInfo::default(),
        &interrupts,
        |_| {
            ticks += 1;
            if ticks == 2 {
                interrupts.fetch_add(1, Ordering::AcqRel);
            }
            Ok(None)
        },
    )
    .unwrap();
    assert_eq!(outcome, TuiExit::Stopped);
    assert!(fleet.stopped_at.get().is_some());
}

/// With no keys, the loop still draws at least four frames a second: between two frames it
/// never waits for input longer than a quarter of a second.
#[test]
fn the_loop_draws_at_least_four_frames_a_second() {
    let fleet = FakeFleet {
        runs_for: Some(12),
        ..FakeFleet::default()
    };
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).unwrap();
    let mut waits = Vec::new();
    drive(
        &mut terminal,
        &fleet,
        &RunInfo::default(),
        &AtomicU32::new(0),
        |timeout| {
            waits.push((timeout, fleet.snapshots.get()));
            std::thread::sleep(timeout);
            Ok(None)
        },
    )
    .unwrap();
    assert!(waits.iter().all(|(w, _)| *w <= TICK), "{waits:?}");
    assert!(TICK <= Duration::from_millis(250));
    // A wait that ran its full course is followed by a frame: waits never stack up.
    for pair in waits.windows(2) {
        let ((_, frames_before), (_, frames_after)) = (pair[0], pair[1]);
        assert!(frames_after > frames_before, "{waits:?}");
    }
}
