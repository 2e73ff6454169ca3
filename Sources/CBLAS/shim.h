#include <cblas.h>
#include <stdlib.h>

/* LAPACK's symmetric eigensolver, which OpenBLAS exports but whose headers Debian ships apart
   (lapack.h). Fortran calling convention: every argument by pointer, then the hidden lengths of
   the two character arguments. */
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info,
             size_t jobz_len, size_t uplo_len);

/* LAPACK's solver for symmetric positive definite band matrices (Cholesky), same convention. */
void dpbsv_(const char *uplo, const int *n, const int *kd, const int *nrhs, double *ab, const int *ldab, double *b,
            const int *ldb, int *info, size_t uplo_len);
