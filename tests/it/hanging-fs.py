#!/usr/bin/python3
"""A file system that stops answering when a file is flushed, as a hung NFS
server does: every operation passes through to BACKING, but fsync(2) and
fdatasync(2) of a file wait SECONDS first. Mounted at MOUNTPOINT in the
foreground until unmounted; a process waiting on it can still be killed.

Usage: hanging-fs.py BACKING MOUNTPOINT SECONDS
"""

import errno
import os
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class Hanging(Operations):
    def __init__(self, root, seconds):
        self.root = root
        self.seconds = seconds

    def _full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def __call__(self, op, path, *args):
        try:
            return super().__call__(op, self._full(path), *args)
        except OSError as e:
            raise FuseOSError(e.errno or errno.EIO)

    def access(self, path, mode):
        if not os.access(path, mode):
            raise FuseOSError(errno.EACCES)

    def getattr(self, path, fh=None):
        st = os.lstat(path)
        return {
            key: getattr(st, key)
            for key in (
                "st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime",
                "st_nlink", "st_size", "st_uid",
            )
        }

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(path)

    def statfs(self, path):
        st = os.statvfs(path)
        return {
            key: getattr(st, key)
            for key in (
                "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail",
                "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax",
            )
        }

    def chmod(self, path, mode):
        os.chmod(path, mode)

    def chown(self, path, uid, gid):
        os.chown(path, uid, gid)

    def mkdir(self, path, mode):
        os.mkdir(path, mode)

    def rmdir(self, path):
        os.rmdir(path)

    def unlink(self, path):
        os.unlink(path)

    def rename(self, old, new):
        os.rename(old, self._full(new))

    def link(self, target, source):
        os.link(self._full(source), target)

    def symlink(self, target, source):
        os.symlink(source, target)

    def readlink(self, path):
        return os.readlink(path)

    def utimens(self, path, times=None):
        os.utime(path, times)

    def truncate(self, path, length, fh=None):
        os.truncate(path, length)

    def open(self, path, flags):
        return os.open(path, flags)

    def create(self, path, mode, fi=None):
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        return os.pwrite(fh, data, offset)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        os.close(fh)

    def fsync(self, path, datasync, fh):
        time.sleep(self.seconds)
        os.fsync(fh)

    def fsyncdir(self, path, datasync, fh):
        return 0


if __name__ == "__main__":
    backing, mountpoint, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    FUSE(
        Hanging(os.path.realpath(backing), seconds),
        mountpoint,
        foreground=True,
        nothreads=False,
        allow_other=True,
    )
