package embedded

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The window's answers are checked against the database in every test that
// commits (crossCheckRecent); this pins what the database cannot show: how
// it forgets.
func TestRecentWritesWindow(t *testing.T) {
	t.Parallel()
	var w recentWrites
	w.sync(chainHead{number: 10, hash: []byte("h10")})
	if !w.covers(10) || w.covers(9) || w.covers(-1) {
		t.Fatalf("after sync at 10: covers(10)=%v covers(9)=%v covers(-1)=%v", w.covers(10), w.covers(9), w.covers(-1))
	}
	// Block n writes k<n> and overwrites "hot"; block 13 deletes "gone".
	for n := int64(11); n <= 11+maxRecentBlocks; n++ {
		keys := []string{fmt.Sprintf("k%03d", n), "hot"}
		ov := map[string]overlayEntry{keys[0]: {ver: version{n, 0}}, "hot": {ver: version{n, 1}}}
		if n == 13 {
			keys = append([]string{"gone"}, keys...)
			ov["gone"] = overlayEntry{ver: version{n, 2}, del: true}
		}
		slices.Sort(keys)
		w.add(n, []byte(fmt.Sprint("h", n)), keys, ov)
	}
	last := int64(11 + maxRecentBlocks)
	if len(w.blocks) != maxRecentBlocks || w.base != 11 || w.last != last {
		t.Fatalf("window holds %d blocks (%d, %d], want %d blocks (11, %d]", len(w.blocks), w.base, w.last, maxRecentBlocks, last)
	}
	if _, ok := w.latest["k011"]; ok {
		t.Errorf("a key of a forgotten block is still remembered")
	}
	if got := w.current("hot", 20, version{20, 1}); got != (version{last, 1}) {
		t.Errorf("hot at head = %+v, want the last write %+v", got, version{last, 1})
	}
	if got := w.current("k020", 20, version{20, 0}); got != (version{20, 0}) {
		t.Errorf("a key last written at the snapshot changed: %+v", got)
	}
	if got := w.current("gone", 12, version{5, 0}); got != (version{}) {
		t.Errorf("a key deleted after the snapshot is %+v, want absent", got)
	}
	r := rangeRead{start: "k020", end: "k023", results: []readEntry{{"k020", version{20, 0}}, {"k021", version{21, 0}}}}
	if diff := cmp.Diff([]readEntry{{"k020", version{20, 0}}, {"k021", version{21, 0}}, {"k022", version{22, 0}}}, w.rangeAtHead(&r, 21), cmp.AllowUnexported(readEntry{}, version{})); diff != "" {
		t.Errorf("range at head mismatch (-want +got):\n%s", diff)
	}
	// A head that is not our last block: forget everything.
	w.sync(chainHead{number: last, hash: []byte("someone else's")})
	if len(w.blocks) != 0 || !w.covers(last) || w.covers(last-1) {
		t.Errorf("after a foreign head: %d blocks, covers(last)=%v, covers(last-1)=%v", len(w.blocks), w.covers(last), w.covers(last-1))
	}
}
