//! The dashboard's view state and what keys do to it: a pure state machine, no terminal.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::client::{REQUEST_KINDS, RequestKind};

/// Start-rate factors `+` and `-` step through: round numbers a user can reason about.
const RATE_STEPS: [f64; 10] = [0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];
const RATE_NORMAL: usize = 4;

/// What the loop must do to the engine after a key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// Stop the run: clients de-register; keep drawing until the engine is finished.
    Quit,
    /// Asked again while stopping: leave now, without waiting for the de-registrations.
    Abandon,
    /// Hold (`true`) or resume new client starts.
    Pause(bool),
    /// Multiply the fleet's ramp speed by this.
    RateFactor(f64),
}

/// The request kinds every run shows: Register, Update, De-register, Notify.
pub const STEADY_KINDS: usize = 4;

/// The panel beside the throughput and errors when the terminal is too small for all of them
/// (`v` cycles through them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The selected request kind's latency by percentile.
    Latency,
    /// What the server asked the clients, how many they handled and how fast.
    Operations,
    /// Clients by state over time.
    Clients,
}

impl View {
    fn next(self) -> View {
        match self {
            View::Latency => View::Operations,
            View::Operations => View::Clients,
            View::Clients => View::Latency,
        }
    }
}

/// What the user chose to see and do.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    /// Index into [`REQUEST_KINDS`]: the request kind the chart and the errors panel show.
    pub selected: usize,
    pub help: bool,
    pub paused: bool,
    rate_step: usize,
    /// `q` was pressed: clients are de-registering.
    pub quitting: bool,
    /// How many request kinds the table shows: the first ones of [`REQUEST_KINDS`] (Bootstrap
    /// Send and Download, the last three, only in runs that have them).
    pub kinds: usize,
    /// The panel shown on a terminal too small for all of them.
    pub view: View,
    /// Why the last key did nothing (shown in the footer until the next key).
    pub status: Option<String>,
    /// What the loop tells of the run and the terminal: what keys can act on.
    pub context: Context,
}

/// What keys can act on, told by the loop before each frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Every client has started: no start schedule is left to pause or speed up.
    pub ramp_finished: bool,
    /// The terminal is large enough for every panel: `v` has nothing to switch.
    pub every_view_shown: bool,
    /// The run's own stop has begun (its duration is over): no client starts any more.
    pub stopping: bool,
}

impl Default for App {
    fn default() -> Self {
        App {
            selected: 0,
            help: false,
            paused: false,
            rate_step: RATE_NORMAL,
            quitting: false,
            kinds: STEADY_KINDS,
            view: View::Latency,
            status: None,
            context: Context::default(),
        }
    }
}

impl App {
    pub fn new() -> Self {
        App::default()
    }

    pub fn selected_kind(&self) -> RequestKind {
        REQUEST_KINDS[self.selected]
    }

    /// Shows the first `kinds` request kinds (at least one); a selection beyond goes back to
    /// the first.
    pub fn show_kinds(&mut self, kinds: usize) {
        self.kinds = kinds.clamp(1, REQUEST_KINDS.len());
        if self.selected >= self.kinds {
            self.selected = 0;
        }
    }

    pub fn rate_factor(&self) -> f64 {
        RATE_STEPS[self.rate_step]
    }

    /// Whether new client starts are held now: paused, and something is left to start.
    pub fn starts_held(&self) -> bool {
        self.paused && self.ramp_runs()
    }

    /// The start rate factor, while it still means something (the ramp runs, no stop).
    pub fn ramp_factor(&self) -> Option<f64> {
        let factor = self.rate_factor();
        ((factor - 1.0).abs() > f64::EPSILON && self.ramp_runs()).then_some(factor)
    }

    /// Updates the view for `key` and says what the engine should do, if anything.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        // Some terminals report releases too; act once per press.
        if key.kind == KeyEventKind::Release {
            return None;
        }
        self.status = None;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // Raw mode turns Ctrl-C into a key: it must still stop the run.
        if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
            return Some(self.quit());
        }
        // Only Ctrl-C is bound with a modifier: a stray control byte (a NUL reads as
        // Ctrl-Space) or an Alt chord must not act as the plain key it carries.
        let chords = KeyModifiers::CONTROL
            | KeyModifiers::ALT
            | KeyModifiers::SUPER
            | KeyModifiers::META
            | KeyModifiers::HYPER;
        if key.modifiers.intersects(chords) {
            self.say("no such key: ? lists the keys");
            return None;
        }
        match key.code {
            KeyCode::Char('q' | 'Q') => Some(self.quit()),
            KeyCode::Char('?') => {
                self.help = !self.help;
                None
            }
            KeyCode::Esc if self.help => {
                self.help = false;
                None
            }
            KeyCode::Tab | KeyCode::Right | KeyCode::Down => {
                self.selected = (self.selected + 1) % self.kinds;
                None
            }
            KeyCode::BackTab | KeyCode::Left | KeyCode::Up => {
                self.selected = (self.selected + self.kinds - 1) % self.kinds;
                None
            }
            KeyCode::Char('v' | 'V') => {
                if self.context.every_view_shown {
                    self.say("every panel is on screen: nothing to switch");
                } else {
                    self.view = self.view.next();
                }
                None
            }
            KeyCode::Char('p' | 'P' | ' ' | '+' | '=' | '-' | '_')
                if self.quitting || self.context.stopping =>
            {
                // Starting or speeding clients up while they de-register would fight the stop.
                self.say("stopping: no client starts any more");
                None
            }
            KeyCode::Char('p' | 'P' | ' ') if self.context.ramp_finished => {
                self.say("ramp finished: every client has started, nothing to pause");
                None
            }
            KeyCode::Char('+' | '=' | '-' | '_') if self.context.ramp_finished => {
                self.say("ramp finished: every client has started, no start rate to change");
                None
            }
            KeyCode::Char('p' | 'P' | ' ') => {
                self.paused = !self.paused;
                Some(Action::Pause(self.paused))
            }
            KeyCode::Char('+' | '=') => self.step_rate(1),
            KeyCode::Char('-' | '_') => self.step_rate(-1),
            KeyCode::Esc => None,
            _ => {
                self.say("no such key: ? lists the keys");
                None
            }
        }
    }

    /// Every client of the run has started (or not yet): `p`, `+` and `-` act only before.
    pub fn set_ramp_finished(&mut self, finished: bool) {
        self.context.ramp_finished = finished;
    }

    /// Whether the run's own stop has begun.
    pub fn set_stopping(&mut self, stopping: bool) {
        self.context.stopping = stopping;
    }

    /// Whether clients are still to start: what `p`, `+` and `-` act on.
    fn ramp_runs(&self) -> bool {
        !self.context.ramp_finished && !self.context.stopping && !self.quitting
    }

    /// Whether the terminal shows every panel at once (then `v` has nothing to do).
    pub fn set_every_view_shown(&mut self, shown: bool) {
        self.context.every_view_shown = shown;
    }

    fn say(&mut self, why: &str) {
        self.status = Some(why.to_string());
    }

    /// Stops the run (`q`, Ctrl-C, a SIGINT); a second time, leaves without waiting.
    pub fn quit(&mut self) -> Action {
        if self.quitting {
            Action::Abandon
        } else {
            self.quitting = true;
            Action::Quit
        }
    }

    fn step_rate(&mut self, by: isize) -> Option<Action> {
        let step = self
            .rate_step
            .saturating_add_signed(by)
            .min(RATE_STEPS.len() - 1);
        if step == self.rate_step {
            let end = if by > 0 { "fastest" } else { "slowest" };
            self.say(&format!(
                "start rate already ×{}, the {end}",
                self.rate_factor()
            ));
            return None;
        }
        self.rate_step = step;
        Some(Action::RateFactor(self.rate_factor()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn assert_factor(app: &App, expected: f64) {
        assert!(
            (app.rate_factor() - expected).abs() < 1e-12,
            "{}",
            app.rate_factor()
        );
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    #[test]
    fn q_stops_once_then_abandons_and_ctrl_c_does_the_same() {
        let mut app = App::new();
        assert_eq!(app.on_key(ch('q')), Some(Action::Quit));
        assert!(app.quitting);
        assert_eq!(app.on_key(ch('q')), Some(Action::Abandon));

        let mut app = App::new();
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Some(Action::Quit));
        assert_eq!(app.on_key(ctrl_c), Some(Action::Abandon));
        // A plain `c` is not a quit.
        assert_eq!(App::new().on_key(ch('c')), None);
    }

    #[test]
    fn keys_with_control_or_alt_do_nothing_but_say_so() {
        let with = |c: char, modifiers| KeyEvent::new(KeyCode::Char(c), modifiers);
        // A NUL byte on stdin reads as Ctrl-Space: it once paused the ramp.
        for chord in [
            with(' ', KeyModifiers::CONTROL),
            with('p', KeyModifiers::CONTROL),
            with('q', KeyModifiers::CONTROL),
            with('d', KeyModifiers::CONTROL),
            with('+', KeyModifiers::ALT),
            with('p', KeyModifiers::ALT),
            KeyEvent::new(KeyCode::Tab, KeyModifiers::CONTROL),
        ] {
            let mut app = App::new();
            assert_eq!(app.on_key(chord), None, "{chord:?}");
            assert!(!app.paused && !app.quitting && !app.help, "{chord:?}");
            assert_eq!(app.selected_kind(), RequestKind::Register, "{chord:?}");
            assert_factor(&app, 1.0);
            assert_eq!(
                app.status.as_deref(),
                Some("no such key: ? lists the keys"),
                "{chord:?}"
            );
        }
        // Shift is part of the key itself: Shift-Tab goes back, `P` pauses.
        let mut app = App::new();
        app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
        assert_eq!(app.selected_kind(), REQUEST_KINDS[STEADY_KINDS - 1]);
        assert_eq!(
            app.on_key(with('P', KeyModifiers::SHIFT)),
            Some(Action::Pause(true))
        );
    }

    #[test]
    fn tab_and_arrows_cycle_through_the_operations() {
        let mut app = App::new();
        assert_eq!(app.selected_kind(), RequestKind::Register);
        assert_eq!(app.on_key(key(KeyCode::Tab)), None);
        assert_eq!(app.selected_kind(), RequestKind::Update);
        app.on_key(key(KeyCode::Right));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected_kind(), RequestKind::Notify);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected_kind(), RequestKind::Register, "wraps around");
        app.on_key(key(KeyCode::Left));
        assert_eq!(app.selected_kind(), RequestKind::Notify, "wraps backwards");
        app.on_key(key(KeyCode::BackTab));
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.selected_kind(), RequestKind::Update);
        // A run that bootstraps has one more row to visit.
        app.show_kinds(STEADY_KINDS + 1);
        app.on_key(key(KeyCode::Left));
        app.on_key(key(KeyCode::Left));
        assert_eq!(app.selected_kind(), RequestKind::Bootstrap);
        app.show_kinds(STEADY_KINDS);
        assert_eq!(
            app.selected_kind(),
            RequestKind::Register,
            "the row went away"
        );
    }

    #[test]
    fn p_toggles_the_pause_and_releases_are_ignored() {
        let mut app = App::new();
        assert_eq!(app.on_key(ch('p')), Some(Action::Pause(true)));
        assert!(app.paused);
        let mut release = ch('p');
        release.kind = KeyEventKind::Release;
        assert_eq!(app.on_key(release), None);
        assert_eq!(app.on_key(ch('p')), Some(Action::Pause(false)));
        assert!(!app.paused);
    }

    #[test]
    fn plus_and_minus_step_the_rate_factor_within_bounds() {
        let mut app = App::new();
        assert_eq!(app.on_key(ch('+')), Some(Action::RateFactor(1.5)));
        assert_eq!(app.on_key(ch('-')), Some(Action::RateFactor(1.0)));
        assert_eq!(app.on_key(ch('-')), Some(Action::RateFactor(0.75)));
        for _ in 0..10 {
            app.on_key(ch('-'));
        }
        assert_factor(&app, 0.1); // never 0: pausing is `p`
        assert_eq!(app.on_key(ch('-')), None, "no action when nothing changes");
        for _ in 0..20 {
            app.on_key(ch('+'));
        }
        assert_factor(&app, 10.0);
    }

    #[test]
    fn help_toggles_and_escape_closes_it() {
        let mut app = App::new();
        assert_eq!(app.on_key(ch('?')), None);
        assert!(app.help);
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert!(!app.help);
        app.on_key(ch('?'));
        app.on_key(ch('?'));
        assert!(!app.help);
        // Escape without help does nothing (it is too easy to hit to mean quit).
        assert_eq!(app.on_key(key(KeyCode::Esc)), None);
        assert!(!app.quitting);
    }

    #[test]
    fn while_stopping_pause_and_rate_keys_say_why_they_do_nothing_but_selection_works() {
        let mut app = App::new();
        app.on_key(ch('q'));
        assert_eq!(app.on_key(ch('p')), None);
        assert_eq!(
            app.status.as_deref(),
            Some("stopping: no client starts any more")
        );
        assert_eq!(app.on_key(ch('+')), None);
        assert!(app.status.is_some());
        assert!(!app.paused);
        assert_factor(&app, 1.0);
        app.on_key(key(KeyCode::Tab));
        assert_eq!(app.selected_kind(), RequestKind::Update);
        assert_eq!(app.status, None, "a key that acts clears the message");

        // The run's own stop (its duration over) is a stop too.
        let mut app = App::new();
        app.on_key(ch('p'));
        assert!(app.starts_held());
        app.set_stopping(true);
        assert!(!app.starts_held());
        assert_eq!(app.on_key(ch('p')), None);
        assert_eq!(app.on_key(ch('-')), None);
        assert_eq!(
            app.status.as_deref(),
            Some("stopping: no client starts any more")
        );
    }

    #[test]
    fn after_the_ramp_pause_and_rate_keys_say_why_they_do_nothing() {
        let mut app = App::new();
        app.set_ramp_finished(true);
        assert_eq!(app.on_key(ch('p')), None);
        assert!(!app.paused && !app.starts_held());
        assert_eq!(
            app.status.as_deref(),
            Some("ramp finished: every client has started, nothing to pause")
        );
        for c in ['+', '-'] {
            assert_eq!(app.on_key(ch(c)), None);
            assert_eq!(
                app.status.as_deref(),
                Some("ramp finished: every client has started, no start rate to change")
            );
        }
        assert_factor(&app, 1.0);
        // A pause or a factor set during the ramp means nothing once it is over.
        let mut app = App::new();
        app.on_key(ch('p'));
        app.on_key(ch('+'));
        assert!(app.starts_held());
        assert_eq!(app.ramp_factor(), Some(1.5));
        app.set_ramp_finished(true);
        assert!(!app.starts_held());
        assert_eq!(app.ramp_factor(), None);
    }

    #[test]
    fn rate_limits_v_on_a_large_terminal_and_unknown_keys_say_why() {
        let mut app = App::new();
        for _ in 0..RATE_STEPS.len() {
            app.on_key(ch('+'));
        }
        assert_eq!(
            app.status.as_deref(),
            Some("start rate already ×10, the fastest")
        );
        for _ in 0..RATE_STEPS.len() {
            app.on_key(ch('-'));
        }
        assert_eq!(
            app.status.as_deref(),
            Some("start rate already ×0.1, the slowest")
        );

        assert_eq!(app.on_key(ch('v')), None);
        assert_eq!(app.view, View::Operations);
        assert_eq!(app.status, None);
        app.on_key(ch('v'));
        assert_eq!(app.view, View::Clients);
        app.on_key(ch('v'));
        assert_eq!(app.view, View::Latency, "wraps around");
        app.set_every_view_shown(true);
        app.on_key(ch('v'));
        assert_eq!(app.view, View::Latency);
        assert_eq!(
            app.status.as_deref(),
            Some("every panel is on screen: nothing to switch")
        );

        assert_eq!(app.on_key(ch('x')), None);
        assert_eq!(app.status.as_deref(), Some("no such key: ? lists the keys"));
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.status, None, "Esc only clears");
    }
}
