//! Runners: what makes followers process their leaders' events, in the
//! calling thread ([`SingleThreadedRunner`]) or in a thread per follower
//! ([`MultiThreadedRunner`]). The applications and their code are the same
//! under either.

mod multi;
mod single;

pub use multi::{DEFAULT_POLL_INTERVAL, MultiThreadedRunner};
pub use single::SingleThreadedRunner;

use super::error::SystemError;
use super::follower::ProcessApplication;
use super::pipes::System;
use crate::application::Application;
use crate::error::BoxError;

impl System {
    /// Has every leader tell `prompt` (with the leader's index) after each
    /// save, so that its followers can be woken.
    pub(crate) fn on_each_save(
        &mut self,
        prompt: impl Fn(usize) -> Result<(), SystemError> + Clone + Send + Sync + 'static,
    ) {
        let leaders: Vec<usize> = {
            let mut leaders: Vec<usize> = self.edges.iter().map(|&(leader, _)| leader).collect();
            leaders.sort_unstable();
            leaders.dedup();
            leaders
        };
        for leader in leaders {
            let prompt = prompt.clone();
            self.nodes[leader]
                .application_mut()
                .subscribe(move |_| prompt(leader).map_err(|e| Box::new(e) as BoxError));
        }
    }

    /// The followers, with the indexes of their leaders.
    pub(crate) fn followers(&self) -> Vec<(usize, Vec<usize>)> {
        let mut followers: Vec<(usize, Vec<usize>)> = Vec::new();
        for &(leader, follower) in &self.edges {
            match followers.iter_mut().find(|(f, _)| *f == follower) {
                Some((_, leaders)) => leaders.push(leader),
                None => followers.push((follower, vec![leader])),
            }
        }
        followers
    }

    /// `follower` catching up with `leader`.
    pub(crate) fn pull(&self, leader: usize, follower: usize) -> Result<usize, SystemError> {
        let Some(process) = self.nodes[follower].process() else {
            return Ok(0);
        };
        process.pull_and_process(self.nodes[leader].application(), None)
    }
}

/// What both runners answer about the system they run.
pub(crate) fn application<'a>(
    system: &'a System,
    name: &str,
) -> Result<&'a Application, SystemError> {
    system
        .application(name)
        .ok_or_else(|| unknown(system, name))
}

pub(crate) fn process<'a>(
    system: &'a System,
    name: &str,
) -> Result<&'a ProcessApplication, SystemError> {
    system.process(name).ok_or_else(|| unknown(system, name))
}

fn unknown(system: &System, name: &str) -> SystemError {
    SystemError::Runner(format!(
        "no application {name:?} in this system (its applications: {:?})",
        system.names()
    ))
}
