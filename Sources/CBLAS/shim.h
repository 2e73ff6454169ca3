#include <cblas.h>
#include <stdlib.h>
