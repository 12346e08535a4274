//! A system of applications declared as pipes: who follows whom.

use std::collections::HashMap;

use crate::application::Application;

use super::error::SystemError;
use super::follower::ProcessApplication;

/// One application of a system.
pub(crate) enum Node {
    /// An application that only leads (or stands alone).
    Plain(Application),
    /// An application that follows, and may lead too.
    Process(ProcessApplication),
}

impl Node {
    pub(crate) fn application(&self) -> &Application {
        match self {
            Node::Plain(app) => app,
            Node::Process(process) => process.application(),
        }
    }

    pub(crate) fn application_mut(&mut self) -> &mut Application {
        match self {
            Node::Plain(app) => app,
            Node::Process(process) => process.application_mut(),
        }
    }

    pub(crate) fn process(&self) -> Option<&ProcessApplication> {
        match self {
            Node::Plain(_) => None,
            Node::Process(process) => Some(process),
        }
    }
}

/// Applications and the pipes between them: in each pipe, every application
/// follows the one before it. Pipes may form cycles (orders → payments →
/// orders). Built and checked with [`System::builder`]; run with a runner
/// ([`SingleThreadedRunner`](super::SingleThreadedRunner),
/// [`MultiThreadedRunner`](super::MultiThreadedRunner)), the same system
/// either way.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::system::{Policies, ProcessApplication, System};
/// let app = |name: &str| Application::builder().name(name).in_memory().build();
/// let system = System::builder()
///     .application(app("orders")?)
///     .process(ProcessApplication::new(app("payments")?, Policies::new())?)
///     .pipe(["orders", "payments"])
///     .build();
/// // A policy that wants no event this program knows can never do anything.
/// assert!(system.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct System {
    pub(crate) nodes: Vec<Node>,
    pub(crate) index: HashMap<String, usize>,
    /// (leader, follower) pairs, each once, in the order the pipes give them.
    pub(crate) edges: Vec<(usize, usize)>,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&str, &str)> = self
            .edges
            .iter()
            .map(|&(leader, follower)| (self.name(leader), self.name(follower)))
            .collect();
        f.debug_struct("System").field("follows", &names).finish()
    }
}

impl System {
    /// Declares a system.
    pub fn builder() -> SystemBuilder {
        SystemBuilder::default()
    }

    /// The names of the applications, in the order they were added.
    pub fn names(&self) -> Vec<&str> {
        (0..self.nodes.len()).map(|i| self.name(i)).collect()
    }

    /// The name of every leader `follower` follows, in pipe order.
    pub fn leaders_of(&self, follower: &str) -> Vec<&str> {
        let Some(&follower) = self.index.get(follower) else {
            return Vec::new();
        };
        self.edges
            .iter()
            .filter(|&&(_, f)| f == follower)
            .map(|&(leader, _)| self.name(leader))
            .collect()
    }

    /// The name of every follower of `leader`, in pipe order.
    pub fn followers_of(&self, leader: &str) -> Vec<&str> {
        let Some(&leader) = self.index.get(leader) else {
            return Vec::new();
        };
        self.edges
            .iter()
            .filter(|&&(l, _)| l == leader)
            .map(|&(_, follower)| self.name(follower))
            .collect()
    }

    pub(crate) fn name(&self, node: usize) -> &str {
        self.nodes[node].application().name().unwrap_or_default()
    }

    /// The application named `name`.
    pub fn application(&self, name: &str) -> Option<&Application> {
        self.index.get(name).map(|&i| self.nodes[i].application())
    }

    /// The process application named `name`, if it is one.
    pub fn process(&self, name: &str) -> Option<&ProcessApplication> {
        self.index.get(name).and_then(|&i| self.nodes[i].process())
    }
}

/// Collects the applications and pipes of a [`System`].
#[derive(Default)]
pub struct SystemBuilder {
    nodes: Vec<Node>,
    pipes: Vec<Vec<String>>,
}

impl std::fmt::Debug for SystemBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemBuilder")
            .field("applications", &self.nodes.len())
            .field("pipes", &self.pipes)
            .finish()
    }
}

impl SystemBuilder {
    /// Adds an application that leads, or stands alone.
    pub fn application(mut self, app: Application) -> Self {
        self.nodes.push(Node::Plain(app));
        self
    }

    /// Adds a process application: it can follow, and lead too.
    pub fn process(mut self, app: ProcessApplication) -> Self {
        self.nodes.push(Node::Process(app));
        self
    }

    /// Adds a pipe: each named application follows the one before it.
    pub fn pipe<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.pipes.push(names.into_iter().map(Into::into).collect());
        self
    }

    /// Checks the declaration: every application named, once; every name in
    /// a pipe known; every follower a process application whose policy
    /// wants at least one event type this program knows. A repeated pipe
    /// link counts once.
    pub fn build(self) -> Result<System, SystemError> {
        let index = self.index()?;
        let mut edges = Vec::new();
        for pipe in &self.pipes {
            if pipe.len() < 2 {
                return Err(SystemError::Invalid(format!(
                    "the pipe {pipe:?} names fewer than two applications"
                )));
            }
            let nodes = pipe
                .iter()
                .map(|name| {
                    index.get(name).copied().ok_or_else(|| {
                        SystemError::Invalid(format!(
                            "the pipe {pipe:?} names {name:?}, which is not an application \
                             of this system (its applications: {:?})",
                            self.nodes
                                .iter()
                                .map(|n| n.application().name())
                                .collect::<Vec<_>>()
                        ))
                    })
                })
                .collect::<Result<Vec<usize>, _>>()?;
            for pair in nodes.windows(2) {
                let (leader, follower) = (pair[0], pair[1]);
                if leader == follower {
                    return Err(SystemError::Invalid(format!(
                        "the pipe {pipe:?} has {:?} follow itself",
                        pipe_name(&self.nodes, leader)
                    )));
                }
                self.check_follower(follower)?;
                if !edges.contains(&(leader, follower)) {
                    edges.push((leader, follower));
                }
            }
        }
        Ok(System {
            nodes: self.nodes,
            index,
            edges,
        })
    }

    fn index(&self) -> Result<HashMap<String, usize>, SystemError> {
        let mut index = HashMap::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            let name = match node.application().name() {
                Some(name) if !name.is_empty() => name,
                _ => {
                    return Err(SystemError::Invalid(
                        "every application of a system needs a name: build it with \
                         Application::builder().name(..)"
                            .into(),
                    ));
                }
            };
            if index.insert(name.to_owned(), i).is_some() {
                return Err(SystemError::Invalid(format!(
                    "two applications are named {name:?}"
                )));
            }
        }
        Ok(index)
    }

    fn check_follower(&self, follower: usize) -> Result<(), SystemError> {
        let name = pipe_name(&self.nodes, follower);
        let Some(process) = self.nodes[follower].process() else {
            return Err(SystemError::Invalid(format!(
                "{name:?} follows another application, but was added with \
                 SystemBuilder::application; add it as a ProcessApplication with \
                 SystemBuilder::process"
            )));
        };
        let known = crate::domain::topic::registered();
        if !known.iter().any(|(topic, _)| process.wants(topic)) {
            return Err(SystemError::Invalid(format!(
                "the policy of {name:?} wants none of the {} event types this program \
                 knows, so it could never process anything; give it a handler \
                 (Policies::on) for its leaders' event enums",
                known.len()
            )));
        }
        Ok(())
    }
}

fn pipe_name(nodes: &[Node], node: usize) -> &str {
    nodes[node].application().name().unwrap_or_default()
}
