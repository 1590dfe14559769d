"""The blob store on a real directory (messenger.server.files.blobs): paths come from
hashes and numbers only, content is placed once and durably, a partial file has one
writer (a lock another process sees), leftovers of crashes are swept once old."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from messenger.server.files.blobs import BlobMissing, BlobStore, Busy

DATA = b"hello blob" * 1000
SHA = hashlib.sha256(DATA).hexdigest()


class BlobStoreTests(SynchronousTestCase):

    def setUp(self):
        self.store = BlobStore(Path(self.mktemp()))
        self.store.prepare()

    def write_partial(self, upload_id, data=DATA):
        fd, length = self.store.open_partial(upload_id, len(data))
        self.store.write(fd, length, data[length:])
        self.store.sync(fd)
        self.store.close(fd)

    def test_paths_come_from_hashes_and_numbers(self):
        """A blob's path is blobs/<2 hex>/<64 hex>; anything else is refused."""
        self.assertEqual(self.store.blob_path(SHA),
                         self.store.root / "blobs" / SHA[:2] / SHA)
        for bad in ("../../etc/passwd", SHA.upper(), SHA[:-1], "x" * 64):
            self.assertRaises(ValueError, self.store.blob_path, bad)
        self.assertEqual(self.store.partial_path(12).name, "12")
        self.assertRaises(ValueError, self.store.partial_path, "../x")

    def test_directories_are_private(self):
        """The store's directories are 0700."""
        for path in (self.store.root, self.store.blobs, self.store.partial):
            self.assertEqual(path.stat().st_mode & 0o777, 0o700)

    def test_resume_hashes_what_the_partial_file_holds(self):
        """Reopening a partial file gives its length and the SHA-256 of its bytes."""
        fd, length = self.store.open_partial(3, len(DATA))
        self.store.write(fd, 0, DATA[:4000])
        self.store.close(fd)
        fd, length = self.store.open_partial(3, len(DATA))
        self.addCleanup(self.store.close, fd)
        hasher = self.store.hash_prefix(fd, length)
        self.assertEqual((length, hasher.hexdigest()),
                         (4000, hashlib.sha256(DATA[:4000]).hexdigest()))

    def test_longer_than_declared_is_cut(self):
        """A partial file longer than its upload's size cannot be right: it is cut."""
        self.write_partial(4, DATA + b"extra")
        fd, length = self.store.open_partial(4, len(DATA))
        self.store.close(fd)
        self.assertEqual(length, len(DATA))

    def test_place_once(self):
        """Placing content links the partial file as the blob; placing the same content
        again from another upload changes nothing."""
        self.write_partial(1)
        self.write_partial(2)
        self.store.place(SHA, 1)
        first = self.store.blob_path(SHA).stat().st_ino
        self.store.place(SHA, 2)
        self.assertEqual(self.store.blob_path(SHA).stat().st_ino, first)
        self.assertEqual(self.store.read(SHA, 10, 5), DATA[10:15])

    def test_ensure(self):
        """Inside the recording transaction: a placed blob is fine, a removed one is
        placed again from its partial file, and without one it is BlobMissing."""
        self.write_partial(1)
        self.store.place(SHA, 1)
        self.store.ensure(SHA, 1)
        self.store.remove_blob(SHA)
        self.store.ensure(SHA, 1)
        self.assertTrue(self.store.blob_path(SHA).exists())
        self.store.remove_blob(SHA)
        self.store.remove_partial(1)
        self.assertRaises(BlobMissing, self.store.ensure, SHA, 1)
        self.assertRaises(BlobMissing, self.store.ensure, SHA, None)

    def test_one_writer_per_partial_file(self):
        """Another process holding a partial file's lock (another cluster node) makes
        opening it Busy; once that process is gone, it opens."""
        self.write_partial(9)
        path = self.store.partial_path(9)
        holder = subprocess.Popen(
            [sys.executable, "-c", "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
             " fcntl.lockf(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
             str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.wait)
        self.assertEqual(holder.stdout.readline().strip(), "locked")
        self.assertRaises(Busy, self.store.open_partial, 9, len(DATA))
        holder.stdin.close()
        holder.wait()
        fd, length = self.store.open_partial(9, len(DATA))
        self.store.close(fd)
        self.assertEqual(length, len(DATA))

    def test_sweeps_remove_only_old_leftovers(self):
        """Partial files of gone uploads and blob files without a row are removed once an
        hour old; live ones and young ones stay."""
        self.write_partial(1)
        self.write_partial(2)
        self.store.place(SHA, 1)
        other = hashlib.sha256(b"other").hexdigest()
        path = self.store.blob_path(other)
        path.parent.mkdir()
        path.write_bytes(b"other")
        now = time.time()
        self.assertEqual(self.store.sweep_partials({1}, now), 0)
        self.assertEqual(self.store.sweep_blobs(set(), now), 0)
        later = now + 2 * 3600
        self.assertEqual(self.store.sweep_partials({1}, later), 1)
        self.assertEqual(self.store.sweep_blobs({SHA}, later), 1)
        self.assertEqual(sorted(os.listdir(self.store.partial)), ["1"])
        self.assertTrue(self.store.blob_path(SHA).exists())
        self.assertFalse(path.exists())

    def test_trash(self):
        """A blob is taken out of blobs/ by a rename (cheap inside a transaction), then
        deleted; a trash left by a crash is emptied by the sweep; trashing a blob that
        is gone already is nothing."""
        self.write_partial(1)
        self.store.place(SHA, 1)
        trashed = self.store.trash_blob(SHA)
        self.assertFalse(self.store.blob_path(SHA).exists())
        self.assertTrue(trashed.exists() and trashed.parent == self.store.trash)
        self.assertIsNone(self.store.trash_blob(SHA))
        self.store.empty_trash([trashed, None])
        self.assertEqual(list(self.store.trash.iterdir()), [])
        self.store.place(SHA, 1)
        left = self.store.trash_blob(SHA)
        self.store.sweep_blobs(set())
        self.assertFalse(left.exists())
