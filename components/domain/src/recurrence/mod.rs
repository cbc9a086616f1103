//! Recurring tasks: the rules (`rules`: patterns and RRULEs, the next
//! occurrence) and the series (`series`: what completing an occurrence
//! writes: the next one, or why the series ends).

pub mod rules;
pub mod series;
