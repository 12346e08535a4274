//! Parsing and checking the macros' input into a small model.

pub(crate) mod ast;
pub(crate) mod attr;
pub(crate) mod check;
pub(crate) mod ctxt;
pub(crate) mod replication;
pub(crate) mod source;
