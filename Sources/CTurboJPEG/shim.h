// libjpeg-turbo's TurboJPEG API: JPEG decoding and encoding that reports errors by return
// value (the libjpeg API's error handler would need setjmp).
#include <turbojpeg.h>
