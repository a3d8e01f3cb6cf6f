package harness

import (
	"os"
	"testing"
)

// TestProcReaders reads this test process's own /proc entries: its parent is the one
// the kernel reports, and it has used some CPU and memory.
func TestProcReaders(t *testing.T) {
	ppid, err := parentPid(os.Getpid())
	if err != nil || ppid != os.Getppid() {
		t.Fatalf("parentPid = %d, %v; want %d", ppid, err, os.Getppid())
	}
	ps, err := ReadProcStats(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ps.RSS <= 0 || ps.PeakRSS < ps.RSS {
		t.Errorf("RSS %d, peak %d: want a positive RSS no larger than the peak", ps.RSS, ps.PeakRSS)
	}
	if _, err := statFields(os.Getpid(), 100); err == nil {
		t.Error("statFields asked for field 100 of /proc/self/stat: no error")
	}
}
