//! The load shape: stages of users (closed model) or of requests per second (open model), and
//! what goose is asked to do for each.

use std::time::Duration;

use ballast_model::load::Model;

/// One stage: a level reached by a linear ramp from the previous stage's level (0 before the
/// first), or at once and held.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub target: f64,
    pub duration: Duration,
    pub ramp: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// Users, each running its scenario's transactions in a loop.
    Closed {
        stages: Vec<Stage>,
        /// Each user runs its scenario this many times, then stops (the stages then hold only
        /// the start of the users).
        iterations: Option<u64>,
    },
    /// Requests at a rate: a schedule of intended send times drawn by a pool of users.
    Open {
        stages: Vec<Stage>,
        /// Requests in all (the stages are cut short when they are sent).
        iterations: Option<u64>,
        /// Users drawing from the schedule: the most requests in flight at once.
        max_users: usize,
    },
}

impl Shape {
    pub fn model(&self) -> Model {
        match self {
            Shape::Closed { .. } => Model::Closed,
            Shape::Open { .. } => Model::Open,
        }
    }

    pub fn stages(&self) -> &[Stage] {
        match self {
            Shape::Closed { stages, .. } | Shape::Open { stages, .. } => stages,
        }
    }

    /// How long the stages last (for a closed model with iterations: how long the users take
    /// to start).
    pub fn duration(&self) -> Duration {
        self.stages().iter().map(|s| s.duration).sum()
    }

    /// The level asked for `t` seconds into the run: users or requests per second.
    pub fn target_at(&self, t: f64) -> f64 {
        let (mut start, mut previous) = (0.0, 0.0);
        for s in self.stages() {
            let d = s.duration.as_secs_f64();
            if t < start + d {
                return if s.ramp {
                    previous + (s.target - previous) * (t - start) / d
                } else {
                    s.target
                };
            }
            start += d;
            previous = s.target;
        }
        match self {
            // Users keep going after their start ramp until their iterations are done.
            Shape::Closed {
                iterations: Some(_), ..
            } => previous,
            _ => 0.0,
        }
    }

    /// The highest level of any stage.
    pub fn peak(&self) -> f64 {
        self.stages().iter().map(|s| s.target).fold(0.0, f64::max)
    }

    /// A goose test plan (`users,seconds;...`) for closed-model stages. goose ramps linearly
    /// from the previous step's users to each step's over the step's time, and a step with the
    /// previous step's users holds them; a final step to 0 users ends the run.
    pub(crate) fn goose_test_plan(stages: &[Stage]) -> String {
        let mut steps = Vec::new();
        let mut previous = 0u64;
        for s in stages {
            let users = s.target as u64;
            let secs = s.duration.as_secs();
            if !s.ramp && users != previous {
                steps.push(format!("{users},0s"));
            }
            steps.push(format!("{users},{secs}s"));
            previous = users;
        }
        if previous > 0 {
            steps.push("0,0s".into());
        }
        steps.join(";")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(target: f64, secs: u64, ramp: bool) -> Stage {
        Stage {
            target,
            duration: Duration::from_secs(secs),
            ramp,
        }
    }

    #[test]
    fn closed_stages_become_a_goose_test_plan() {
        let stages = [
            stage(10.0, 10, true),
            stage(10.0, 60, false),
            stage(50.0, 5, false),
            stage(0.0, 10, true),
        ];
        assert_eq!(Shape::goose_test_plan(&stages), "10,10s;10,60s;50,0s;50,5s;0,10s");
        assert_eq!(Shape::goose_test_plan(&[stage(4.0, 30, false)]), "4,0s;4,30s;0,0s");
    }

    #[test]
    fn the_target_follows_ramps_and_holds() {
        let shape = Shape::Open {
            stages: vec![stage(100.0, 10, true), stage(100.0, 10, false), stage(500.0, 5, false)],
            iterations: None,
            max_users: 10,
        };
        assert_eq!(shape.target_at(5.0), 50.0);
        assert_eq!(shape.target_at(15.0), 100.0);
        assert_eq!(shape.target_at(22.0), 500.0);
        assert_eq!(shape.target_at(30.0), 0.0);
        assert_eq!(shape.duration(), Duration::from_secs(25));
        assert_eq!(shape.peak(), 500.0);
    }
}
