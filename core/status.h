/*
 * status: what the agent says about itself: the /status JSON, the HTML
 * page, and the state file tests and tools read to find bound addresses.
 */
#ifndef OTR_STATUS_H
#define OTR_STATUS_H

#include "admin.h"
#include "agent.h"

/* The /status JSON object. */
void otr_status_json(struct otr_agent *a, struct otr_buf *out);
/* The / HTML page. */
void otr_status_html(struct otr_agent *a, struct otr_buf *out);
/* Writes --state-file atomically (if given): pid, role, version,
 * generation and every listener's bound address. */
void otr_status_write_state_file(struct otr_agent *a);

#endif
