//! The `sslab` command line (see `sslab --help`).

fn main() {
    std::process::exit(sslab::cli::main());
}
