package keys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

const (
	dirPerm     = 0o700
	filePerm    = 0o600
	maxKeyFile  = 4096     // bytes; a PEM Ed25519 key is 119, a KEK 45
	keyFileExt  = ".key"   // version files are v<N>.key
	tempPattern = ".tmp-*" // temp files, never read as keys
	maxCreate   = 8        // attempts for Rotate when other processes rotate too
)

// checkPerm refuses a key directory or file that group or others can access,
// or that is not what it should be. Windows has no such mode bits; there the
// directory's ACL is the operator's job.
func checkPerm(path string, fi fs.FileInfo, wantDir bool) error {
	switch {
	case wantDir && !fi.IsDir():
		return fmt.Errorf("%s is not a directory: %w", path, ErrInsecurePermissions)
	case !wantDir && !fi.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file: %w", path, ErrInsecurePermissions)
	case runtime.GOOS == "windows":
		return nil
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		want := os.FileMode(filePerm)
		if wantDir {
			want = dirPerm
		}
		return fmt.Errorf("%s has mode %04o, accessible to group or others; refusing to use it (chmod %04o %s): %w",
			path, perm, want, path, ErrInsecurePermissions)
	}
	return nil
}

// checkDir checks an existing directory; a missing one is not an error.
func checkDir(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkPerm(path, fi, true)
}

// ensureDir creates path (0700) if missing and checks it.
func ensureDir(path string) error {
	if err := os.MkdirAll(path, dirPerm); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	return checkPerm(path, fi, true)
}

// readKeyFile reads a key file after checking its mode. A missing file is
// ErrNotFound.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := checkPerm(path, fi, false); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, maxKeyFile, ErrMalformed)
	}
	return b, nil
}

// createKeyFile writes data to path atomically and exclusively: it writes and
// syncs a temp file (0600) in the same directory, then hard-links it to path.
// Unlike rename, link fails if path exists, so two processes creating the same
// key cannot overwrite each other, and readers see either no file or the
// whole file. The error wraps fs.ErrExist when path exists.
func createKeyFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern) // O_EXCL, mode 0600
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		// The temp name always goes; on success path keeps the inode.
		if rmErr := os.Remove(tmp.Name()); rmErr != nil && err == nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = fmt.Errorf("remove temp file: %w", rmErr)
		}
	}()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return fmt.Errorf("create %s: %w", path, err) // wraps fs.ErrExist on EEXIST
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// listVersions returns the versions present in dir, ascending; none if dir
// does not exist. Files that are not v<N>.key (temp files) are ignored.
func listVersions(dir string) ([]uint32, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var vs []uint32
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), keyFileExt)
		if !ok {
			continue
		}
		if v, ok := parseVersion(s); ok {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs, nil
}

// parseVersion parses "v<N>" with N in 1..2^32-1 and no leading zeros, so
// each version has exactly one spelling.
func parseVersion(s string) (uint32, bool) {
	d, ok := strings.CutPrefix(s, "v")
	if !ok || d == "" || len(d) > 10 || d[0] == '0' {
		return 0, false
	}
	for _, c := range []byte(d) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(d, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(v), true
}

func versionFile(dir string, v uint32) string {
	return filepath.Join(dir, "v"+strconv.FormatUint(uint64(v), 10)+keyFileExt)
}
