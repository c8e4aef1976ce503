/*
 * lifecycle: moves generations through start, current and drain on the
 * workers (lifecycle.c), and the agent through shutdown (agent.c).
 */
#ifndef OTR_LIFECYCLE_H
#define OTR_LIFECYCLE_H

#include "agent.h"

/* Exit codes of the outrider process (documented in the README). */
enum otr_exit {
    OTR_EXIT_OK = 0,       /* clean exit; -t: configuration ok */
    OTR_EXIT_CONFIG = 1,   /* the configuration (or a script) is invalid */
    OTR_EXIT_USAGE = 2,    /* bad command line, unknown role */
    OTR_EXIT_STARTUP = 3,  /* could not start: bind failed, module init/start failed */
    OTR_EXIT_DRAIN = 4,    /* shutdown forced: modules did not drain by the deadline */
};

/* Starts g on every worker; it becomes current when all started (main). */
void otr_gen_start(struct otr_gen *g);
/* Drains g on every worker, then frees it (main). */
void otr_gen_drain(struct otr_gen *g, uint64_t timeout_ms);
/* Begins shutdown: /ready turns 503; after the drain delay (unless
 * immediate) the current generation drains; the agent exits when done. */
void otr_agent_shutdown(struct otr_agent *a, bool use_delay);
/* Finishes the exit once nothing is left draining (main). */
void otr_agent_maybe_finish(struct otr_agent *a);

#endif
