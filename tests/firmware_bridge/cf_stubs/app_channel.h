/* crazyflie-firmware src/modules/interface/app_channel.h (test stub) */
#pragma once
#include <stddef.h>
#define APPCHANNEL_WAIT_FOREVER (-1)
int appchannelSendDataPacket(void* data, size_t length);
size_t appchannelReceiveDataPacket(void* buffer, size_t max_length, int timeout_ms);
