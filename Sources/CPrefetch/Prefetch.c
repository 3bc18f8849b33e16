// CPrefetch is header-only (an inline hint Swift cannot spell); SwiftPM needs one source file per C target.
#include "CPrefetch.h"
