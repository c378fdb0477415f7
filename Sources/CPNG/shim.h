// libpng's simplified API (png_image), for reading and writing PNG images and masks.
#include <png.h>
