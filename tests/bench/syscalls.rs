//! The least the logger's work can cost: the system calls of one myapp run
//! (open and lock LOGFILE, read the time zone, write the line, report on
//! stdout, close) made straight through libc, with no allocation, checks,
//! configuration or error handling. The benchmark compares myapp with it.

fn main() {
    // SAFETY: libc calls on locals and on the C strings given to them;
    // getenv's result is checked before use.
    unsafe {
        let path = libc::getenv(c"LOGFILE".as_ptr());
        assert!(!path.is_null(), "LOGFILE is not set");
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC;
        let fd = libc::open(path, flags, 0o644);
        assert!(fd >= 0, "cannot open LOGFILE");
        libc::flock(fd, libc::LOCK_EX);
        let mut now: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&now.tv_sec, &mut tm);
        let mut line = [0u8; 64];
        let len = libc::snprintf(
            line.as_mut_ptr().cast(),
            line.len(),
            c"[syscalls] executed at %04d-%02d-%02d %02d:%02d:%02d.%06ld\n".as_ptr(),
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday,
            tm.tm_hour,
            tm.tm_min,
            tm.tm_sec,
            now.tv_nsec / 1000,
        );
        libc::write(fd, line.as_ptr().cast(), len as usize);
        let done = c"[syscalls] wrote to LOGFILE\n";
        libc::write(1, done.as_ptr().cast(), done.count_bytes());
        libc::close(fd);
    }
}
