//! The upgrade-strategy arithmetic: from counts of an app's instances to how many to
//! launch and kill in this round. Pure numbers, so it is table- and property-tested
//! alone; [`super::plan()`] picks which tasks.
//!
//! Rules, for `n` wanted instances:
//! - at least `min_healthy = ceil(n * minimumHealthCapacity)` instances stay ready: a
//!   ready instance is killed only while that many remain ready after it;
//! - at most `max_total = n + floor(n * maximumOverCapacity)` instances are active,
//!   stopping ones included: launches wait for room;
//! - an old instance that is not ready is killed at once (it serves nothing); a ready old
//!   instance is killed when a ready instance of the target version replaces it, or to
//!   make room for launches the over-capacity limit blocks, down to `min_healthy`;
//! - when `min_healthy >= max_total` (Marathon's `mhc = 1, moc = 0`, or rounding, e.g.
//!   3 instances with 0.9 and 0.2) nothing could ever be replaced: Drover allows one
//!   extra instance (`max_total = n + 1`), as Marathon does, rather than dropping below
//!   the minimum;
//! - an app labelled `MARATHON_SINGLE_INSTANCE_APP` stops the old instance before the new
//!   one starts (`min_healthy = 0`, `max_total = n`).

use drover_api::app::AppDefinition;

/// The bounds a rollout keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Ready instances that must remain.
    pub min_healthy: u32,
    /// Active instances allowed at once.
    pub max_total: u32,
}

impl Limits {
    /// The limits of `app` (for its `instances`).
    pub fn of(app: &AppDefinition) -> Limits {
        let n = app.instances;
        if app.is_single_instance() {
            return Limits {
                min_healthy: 0,
                max_total: n,
            };
        }
        let s = app.upgrade_strategy;
        Limits::for_counts(n, s.minimum_health_capacity, s.maximum_over_capacity)
    }

    /// The limits for `n` instances and the strategy's two fractions (clamped to 0..=1).
    pub fn for_counts(n: u32, mhc: f64, moc: f64) -> Limits {
        let frac = |x: f64| if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
        let nf = f64::from(n);
        // The epsilon keeps 4 * 0.5 at 2 and 10 * 0.3 at 3 despite binary fractions.
        let min = ((nf * frac(mhc)) - 1e-9).ceil().max(0.0);
        let over = ((nf * frac(moc)) + 1e-9).floor().max(0.0);
        // Both are at most n, so the casts are exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let (min, over) = (min as u32, over as u32);
        let mut max_total = n.saturating_add(over);
        if n > 0 && min >= max_total {
            max_total = n.saturating_add(1);
        }
        Limits {
            min_healthy: min.min(n),
            max_total,
        }
    }
}

/// An app's instances by bucket, as the rollout sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Instances wanted.
    pub instances: u32,
    /// Ready instances of the target version.
    pub ready_new: u32,
    /// Not yet ready instances of the target version.
    pub starting_new: u32,
    /// Ready instances of other versions.
    pub ready_old: u32,
    /// Not ready instances of other versions.
    pub starting_old: u32,
    /// Instances already stopping (including unhealthy ones killed in this round).
    pub stopping: u32,
}

/// What to do in this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decision {
    /// Instances of the target version to launch.
    pub launch: u32,
    /// Wanted launches the over-capacity limit holds back.
    pub held: u32,
    /// Not-ready old instances to kill.
    pub kill_starting_old: u32,
    /// Ready old instances to kill.
    pub kill_ready_old: u32,
    /// Not-ready target instances to kill (more than wanted).
    pub kill_starting_new: u32,
    /// Ready target instances to kill (more than wanted).
    pub kill_ready_new: u32,
    /// Ready instances left once the kills are done.
    pub ready_after: u32,
    /// Instances that will vacate room: stopping ones and this round's kills.
    pub vacating: u32,
}

impl Decision {
    /// All kills of the round.
    pub fn kills(&self) -> u32 {
        self.kill_starting_old + self.kill_ready_old + self.kill_starting_new + self.kill_ready_new
    }

    /// More ready old instances that may be killed because `unplaced` launches found no
    /// node (killing frees a node's resources or constraint slot), within the minimum.
    pub fn kills_for_unplaced(&self, c: &Counts, l: Limits, unplaced: u32) -> u32 {
        let short = unplaced.saturating_sub(self.vacating);
        let can = self
            .ready_after
            .saturating_sub(l.min_healthy)
            .min(c.ready_old.saturating_sub(self.kill_ready_old));
        short.min(can)
    }
}

/// The round's launches and kills for counts `c` under limits `l`.
pub fn decide(c: &Counts, l: Limits) -> Decision {
    let n = c.instances;
    let mut d = Decision::default();
    let new = c.ready_new + c.starting_new;
    // More target instances than wanted (scale down, or launches accepted twice): the
    // not-ready ones go first.
    if new > n {
        let excess = new - n;
        d.kill_starting_new = excess.min(c.starting_new);
        d.kill_ready_new = excess - d.kill_starting_new;
    }
    let kept_ready_new = c.ready_new - d.kill_ready_new;
    let kept_new = new - d.kill_starting_new - d.kill_ready_new;
    d.kill_starting_old = c.starting_old;
    // Every ready target instance beyond what the old ones fill up to n replaces one.
    d.kill_ready_old = (kept_ready_new + c.ready_old)
        .saturating_sub(n)
        .min(c.ready_old);
    let mut ready = kept_ready_new + c.ready_old - d.kill_ready_old;
    let total = new + c.ready_old + c.starting_old + c.stopping;
    let room = l.max_total.saturating_sub(total);
    let want = n.saturating_sub(kept_new);
    let vacating = c.stopping + d.kills();
    if want > room + vacating {
        let short = want - room - vacating;
        let can = ready
            .saturating_sub(l.min_healthy)
            .min(c.ready_old - d.kill_ready_old);
        let extra = short.min(can);
        d.kill_ready_old += extra;
        ready -= extra;
    }
    d.launch = want.min(room);
    d.held = want - d.launch;
    d.ready_after = ready;
    d.vacating = c.stopping + d.kills();
    d
}
