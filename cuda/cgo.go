//go:build cuda

package cuda

/*
#cgo CFLAGS: -I${SRCDIR}/../kernels
#cgo LDFLAGS: -L${SRCDIR}/../build -ltokamak_kernels -Wl,-rpath,${SRCDIR}/../build
#include "tokamak.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Available reports whether this binary was built with CUDA support.
func Available() bool { return true }

// callError turns a kernels status code into an error naming the call (and
// the failing runtime call inside it, when the library recorded one).
func callError(call string, rc C.int) error {
	if rc == 0 {
		return nil
	}
	inner := C.GoString(C.tk_last_call())
	msg := C.GoString(C.tk_error_string(rc))
	if inner != "" && inner != call {
		return fmt.Errorf("cuda: %s: %s failed: %s (code %d)", call, inner, msg, int(rc))
	}
	return fmt.Errorf("cuda: %s: %s (code %d)", call, msg, int(rc))
}

// i32p views a device address as the int32 pointer the C ABI takes.
func i32p(p unsafe.Pointer) *C.int32_t { return (*C.int32_t)(p) }
