/* Every route of the reader, in matching order. */
#include "routes.h"

const RdRoute *const rd_route_groups[] = {
	rd_routes_clients, rd_routes_patients, rd_routes_staff, rd_routes_events,
	rd_routes_scheduling, rd_routes_records, rd_routes_stock, rd_routes_billing, NULL,
};
