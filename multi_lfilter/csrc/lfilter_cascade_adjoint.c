/* The adjoint tile kernels of cascades of biquads, recomputed from checkpoints; see
 * lfilter_kernels.c for the recurrence. */
#include "lfilter_tiles.h"

MLF_CLONES void mlf_cascade_adjoint_tiles(const mlf_problem *p, int64_t begin, int64_t end,
                                          const cascade_buffers *buffers)
{
    tile_rows tile;
    for (int64_t index = begin; index < end; ++index) {
        make_tile(p, index, &tile);
        if (p->is_double)
            adjoint_cascade_tile(p, &tile, (int)p->sections, 1, buffers);
        else
            adjoint_cascade_tile(p, &tile, (int)p->sections, 0, buffers);
    }
}
