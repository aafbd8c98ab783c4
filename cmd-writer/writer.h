/* cmd-writer: validates commands against its in-memory write model and appends
 * the resulting events to Kafka in transactions (see ARCHITECTURE.md). This
 * header holds the daemon's configuration and the modules' entry points. */
#ifndef WRITER_H
#define WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "vp_service.h"

typedef struct WrConfig {
	char *host;
	long port;
	char *brokers;
	char *topic;
	char *kafka_props;
	long instance;
	long instances;
	char *log_level;
} WrConfig;

typedef struct WrAppender WrAppender;

/* appender.c: the transactional producer. Start returns at once; a side thread
 * runs init_transactions (which fences older writers with our transactional.id)
 * and checks the topic, then marks the appender ready. */
WrAppender *wr_appender_new(const WrConfig *cfg, char *why, size_t why_cap);
int wr_appender_start(WrAppender *a);
bool wr_appender_ready(WrAppender *a, char *why, size_t why_cap);
/* Non-zero once the producer hit a fatal error (fenced): the daemon must exit. */
bool wr_appender_fatal(WrAppender *a);
WrAppender *wr_appender_free(WrAppender *a);

#endif
