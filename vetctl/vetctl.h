/* vetctl: the ops CLI. One file per subcommand; each takes the arguments after
 * its name and returns the process exit code. */
#ifndef VETCTL_H
#define VETCTL_H

int vc_cmd_kafka(int argc, char **argv);
int vc_cmd_topics(int argc, char **argv);
int vc_cmd_token(int argc, char **argv);
int vc_cmd_catalog(int argc, char **argv);
int vc_cmd_events(int argc, char **argv);
int vc_cmd_analyst(int argc, char **argv);

#endif
