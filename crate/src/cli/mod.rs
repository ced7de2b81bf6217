//! The `sslab` command line: pretraining, probing and supervised baselines
//! for runs longer than a notebook cell, using the same code as the notebooks.

/// Runs the command line on the process arguments and returns the exit code.
pub fn main() -> i32 {
    0
}
