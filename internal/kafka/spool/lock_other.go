//go:build !unix

package spool

import "os"

// lockDir does nothing where flock is missing: one process per directory
// is then the operator's job.
func lockDir(dir string) (*os.File, error) { return nil, nil }
