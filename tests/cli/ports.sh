# Sourced by the CLI tests that start a TCP store on loopback.
# random_store_port prints a port for rank 0 to listen on. It is drawn below the kernel's
# range of local ports (ip_local_port_range), since a port inside that range can be
# taken by any outgoing connection between the draw and the listen, as mpirun's own
# connections do. Callers still retry on "cannot listen": another job may hold the port.
random_store_port() {
  local low=32768
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
  fi
  [ "$low" -gt 11024 ] || low=32768
  echo $((10000 + RANDOM % (low - 10000)))
}
