/* SPDX-License-Identifier: Apache-2.0 */

/* What the D-Bus service shows for a Manager: state, properties, devices. */

#include "manager-dbus.h"
#include "tests.h"

static void test_props(void) {
        Manager m = {
                .config = { .driver_name = (char *) "drv", .node_name = (char *) "node-1" },
                .state = MANAGER_DEGRADED,
                .degraded_reason = (char *) "some GPUs could not be read",
                .kubelet_registered = true,
        };
        BusManagerProps p;

        manager_dbus_props(&m, &p);
        ASSERT_STREQ(p.driver_name, "drv");
        ASSERT_STREQ(p.node_name, "node-1");
        ASSERT_EQ(p.state, BUS_STATE_DEGRADED);
        ASSERT_STREQ(p.state_reason, "some GPUs could not be read");
        ASSERT_TRUE(p.kubelet_registered);

        m.state = MANAGER_STARTING;
        m.registration_error = (char *) "socket gone";
        manager_dbus_props(&m, &p);
        ASSERT_EQ(p.state, BUS_STATE_STARTING);
        ASSERT_STREQ(p.state_reason, "socket gone");
}

static void test_sync_into_server(void) {
        Gpu gpus[2] = {
                { .name = "hami-gpu-0", .uuid = "GPU-a", .product_name = "NVIDIA A10",
                  .memory_total = 24ull << 30, .cores = 100, .health = GPU_HEALTH_HEALTHY },
                { .name = "hami-gpu-1", .uuid = "GPU-b", .product_name = "NVIDIA A10",
                  .memory_total = 24ull << 30, .cores = 100, .health = GPU_HEALTH_UNHEALTHY,
                  .health_reason = "XID 79" },
        };
        Manager m = {
                .config = { .driver_name = (char *) "drv", .node_name = (char *) "n" },
                .state = MANAGER_READY,
                .gpus = { .gpus = gpus, .n_gpus = 2 },
        };
        BusServer *s = NULL;
        const BusModel *model;

        ASSERT_OK(bus_server_new(NULL, NULL, &m, &s));
        ASSERT_OK(manager_dbus_sync(&m, s));
        model = bus_server_get_model(s);
        ASSERT_EQ(model->n_devices, 2);
        ASSERT_STREQ(model->devices[1].uuid, "GPU-b");
        ASSERT_STREQ(model->devices[1].health_reason, "XID 79");
        ASSERT_EQ(model->devices[1].health, GPU_HEALTH_UNHEALTHY);
        ASSERT_TRUE(model->devices[0].schedulable);

        m.gpus.n_gpus = 1;
        ASSERT_OK(manager_dbus_sync(&m, s));
        ASSERT_EQ(bus_server_get_model(s)->n_devices, 1);

        ASSERT_OK(manager_dbus_sync(&m, NULL));
        bus_server_free(s);
}

int main(void) {
        TEST(test_props);
        TEST(test_sync_into_server);
        return 0;
}
