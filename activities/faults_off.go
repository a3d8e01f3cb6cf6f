//go:build !faultinject

package activities

// faultPoint does nothing in normal builds; the faultinject build tag replaces it.
func faultPoint(string) {}
