/* The adjoint tile kernels of one filter (orders 1 and 2 specialised); see
 * lfilter_kernels.c for the recurrence. */
#include "lfilter_tiles.h"

MLF_CLONES void mlf_adjoint_tiles(const mlf_problem *p, int64_t begin, int64_t end)
{
    tile_rows tile;
    for (int64_t index = begin; index < end; ++index) {
        make_tile(p, index, &tile);
#define ADJOINT_CASE(N)                                  \
    case N:                                              \
        if (p->is_double)                                \
            adjoint_tile(p, &tile, N, 1);                \
        else                                             \
            adjoint_tile(p, &tile, N, 0);                \
        break;
        switch (p->order) {
            FOR_EACH_SPECIALISED_ORDER(ADJOINT_CASE)
        default:
            adjoint_tile(p, &tile, (int)p->order, (int)p->is_double);
        }
#undef ADJOINT_CASE
    }
}
