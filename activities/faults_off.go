//go:build !faultinject

package activities

import "time"

// faultPoint does nothing in normal builds; the faultinject build tag replaces it.
func faultPoint(string) {}

// FaultClock is the real clock (nil) in normal builds; the faultinject build can skew it
// (faults_on.go).
func FaultClock() (func() time.Time, time.Duration, error) { return nil, 0, nil }
