#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mount -t tracefs t /sys/kernel/tracing
SYNC=0; for a in $(cat /proc/cmdline); do case $a in hilt.sync=*) SYNC=${a#hilt.sync=};; esac; done
i=0; while [ ! -b /dev/mmcblk0p1 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
mount -t erofs -o ro,cache_strategy=disabled /dev/mmcblk0p1 /mnt || echo MOUNT FAILED
echo $SYNC > /sys/fs/erofs/mmcblk0p1/sync_decompress
echo "EXP uname: $(uname -r) $(uname -v)"
echo "EXP sync_decompress=$(cat /sys/fs/erofs/mmcblk0p1/sync_decompress)"
cd /sys/kernel/tracing
echo 'p:dq z_erofs_decompress_queue' > kprobe_events
echo 'stacktrace:3' > events/kprobes/dq/trigger
echo 1 > events/kprobes/enable
echo 3 > /proc/sys/vm/drop_caches
for f in $(find /mnt -type f); do cat $f > /dev/null; done
echo 0 > events/kprobes/enable
echo "EXP calls by task:"
grep ' dq:' trace | awk '{print $1}' | sed 's/-[0-9]*$//' | sort | uniq -c | sed 's/^/EXP   /'
echo "EXP first stacks:"
grep -A24 '<stack trace>' trace | head -80 | sed 's/^/EXP   /'
echo "EXP sync_decompress after=$(cat /sys/fs/erofs/mmcblk0p1/sync_decompress)"
poweroff -f
