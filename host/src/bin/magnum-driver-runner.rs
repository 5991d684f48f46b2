//! `magnum-driver-runner`: runs one driver library for a magnumd whose
//! manifest says `isolation = "process"`. Started by magnumd, never by
//! hand: it speaks length-prefixed JSON frames on stdin and stdout
//! (host/src/plugins/runner.rs).

fn main() {
    let mut args = std::env::args().skip(1);
    let mut memory_mb = magnum_host::plugins::runner::DEFAULT_RUNNER_MEMORY_MB;
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|v| v.parse::<u64>())) {
            ("--memory-mb", Some(Ok(mb))) => memory_mb = mb,
            _ => {
                eprintln!(
                    "magnum-driver-runner: usage: magnum-driver-runner [--memory-mb N]; \
                     magnumd starts it for drivers registered with --isolation process"
                );
                std::process::exit(64);
            }
        }
    }
    std::process::exit(magnum_host::plugins::runner::serve_runner(memory_mb));
}
