package runner

import (
	"syscall"
	"unsafe"
)

// waitExited blocks until the child pid has exited without reaping it
// (waitid with WNOWAIT), so its pid, and the process group it leads, stay
// reserved until cmd.Wait.
func waitExited(pid int) error {
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, 1 /* P_PID */, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}
