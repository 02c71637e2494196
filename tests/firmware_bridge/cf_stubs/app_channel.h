/* crazyflie-firmware src/modules/interface/app_channel.h (test stub, prototypes as in 7185a75f).
 * appchannelSendDataPacket does not block: it returns pdTRUE when queued, 0 (errQUEUE_FULL) when dropped. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#define APPCHANNEL_WAIT_FOREVER (-1)
#define APPCHANNEL_MTU (31)
void appchannelSendDataPacketBlock(void* data, size_t length);
int appchannelSendDataPacket(void* data, size_t length);
size_t appchannelReceiveDataPacket(void* buffer, size_t max_length, int timeout_ms);
bool appchannelHasOverflowOccurred();
