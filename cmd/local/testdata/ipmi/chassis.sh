#!/bin/sh
# chassis_control program for an ipmi_sim BMC in the tests. ipmi_sim runs it
# through /bin/sh -c as "chassis.sh STATE get power" or "chassis.sh STATE set
# power|reset|shutdown|boot VALUE". The power state (0 or 1) lives in the file
# STATE; every set is also appended to STATE.log, so a test can tell exactly
# which BMCs a request touched.
state=$1
shift
case "$1 $2" in
"get power")
	echo "power:$(cat "$state" 2>/dev/null || echo 0)"
	;;
"set power")
	echo "$3" >"$state.tmp" && mv "$state.tmp" "$state"
	echo "power $3" >>"$state.log"
	;;
"set "*)
	echo "$2 $3" >>"$state.log"
	;;
*)
	echo "chassis.sh: unsupported: $*" >&2
	exit 1
	;;
esac
