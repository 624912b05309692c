//! Standard output of the commands. A reader that goes away early
//! (`guardway guard check x.wasm | head -1`) ends the command quietly with
//! exit status 0, as for other command-line tools, where `println!` would
//! panic on the broken pipe.

use std::io::Write;

/// Writes `args` to standard output; see the module comment for a closed pipe.
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(args).and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("error: cannot write to standard output: {error}");
            std::process::exit(1);
        }
    }
}

/// `print!` that ends the command quietly when standard output is closed.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write(format_args!($($arg)*))
    };
}

/// `println!` that ends the command quietly when standard output is closed.
macro_rules! outln {
    () => {
        $crate::output::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}
