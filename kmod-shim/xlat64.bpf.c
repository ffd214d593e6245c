// placeholder: being written this session
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
SEC("tc")
int xlat64_egress(struct __sk_buff *skb) { return TC_ACT_SHOT; }
char LICENSE[] SEC("license") = "Dual BSD/GPL";
