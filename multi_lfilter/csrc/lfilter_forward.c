/* The forward tile kernels: one filter (orders 1 and 2 specialised) or a cascade of
 * biquads in one pass; see lfilter_kernels.c for the recurrence and the layout. */
#include "lfilter_tiles.h"

MLF_CLONES void mlf_forward_tiles(const mlf_problem *p, int64_t begin, int64_t end)
{
    tile_rows tiles[TILES_AT_ONCE];
    for (int64_t index = begin; index < end; index += TILES_AT_ONCE) {
        for (int u = 0; u < TILES_AT_ONCE; ++u) {
            /* Past the range: a copy of the first tile that writes nothing. */
            make_tile(p, index + u < end ? index + u : index, &tiles[u]);
            if (index + u >= end)
                tiles[u].lanes = 0;
        }
#define FORWARD_CASE(N)                                       \
    case N:                                                   \
        if (p->is_double)                                     \
            forward_tiles_together(p, tiles, N, 1);           \
        else                                                  \
            forward_tiles_together(p, tiles, N, 0);           \
        break;
        if (p->sections > 1) {
            if (p->is_double)
                forward_cascade_tiles_together(p, tiles, (int)p->sections, 1);
            else
                forward_cascade_tiles_together(p, tiles, (int)p->sections, 0);
            continue;
        }
        switch (p->order) {
            FOR_EACH_SPECIALISED_ORDER(FORWARD_CASE)
        default:
            forward_tiles_together(p, tiles, (int)p->order, (int)p->is_double);
        }
#undef FORWARD_CASE
    }
}
